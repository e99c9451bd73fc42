"""`make run`: prepares the database, the broker topology and object storage, then runs every
service in the foreground until Ctrl-C or SIGTERM, which stops them all. Without
THUMBWIRE_AUTH_SECRET it makes a development secret (kept under ./var) for the services, and
prints a token to try them with."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from services.core.auth import SECRET_VARIABLE, TokenAuthority
from services.core.config import ConfigError, Settings
from services.core.dev_secret import DEV_SECRET_PATH, load_or_create_dev_secret
from services.core.lifecycle import EXIT_CONFIG, setup_logging
from services.core.s3_server import EmbeddedS3Server
from services.setup import prepare

log = logging.getLogger("devstack")
SERVICES = ("upload", "thumbnailer", "notifier")
STOP_TIMEOUT_S = 30.0
S3_DATA_DIR = Path("var/s3")
DEMO_WORKSPACE = "demo"
DEV_TOKEN_TTL_S = 24 * 3600.0


class Stack:
    """The service processes; stops them all when one dies or a signal arrives."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = False

    def start(self) -> None:
        for name in SERVICES:
            command = [sys.executable, "-m", f"services.{name}"]
            self._processes[name] = subprocess.Popen(command, env=self._env)

    def request_stop(self, signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping every service", signal.Signals(signum).name)
        self._stopping = True

    def wait(self) -> int:
        """Blocks until a stop is requested or a service exits; returns the exit status."""
        while not self._stopping:
            for name, process in self._processes.items():
                if process.poll() is not None:
                    log.error("%s exited with %s: stopping the others", name, process.returncode)
                    return 1
            time.sleep(0.2)
        return 0

    def stop(self) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name, process in self._processes.items():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0fs: killing it", name, STOP_TIMEOUT_S)
                process.kill()
                process.wait()


def dev_tokens(settings: Settings, env: dict[str, str]) -> TokenAuthority:
    """The authority of THUMBWIRE_AUTH_SECRET or, when it is unset, of a development secret
    that the services get through `env`."""
    if settings.auth_secret:
        return TokenAuthority(settings.auth_secret)
    secret = load_or_create_dev_secret(DEV_SECRET_PATH)
    log.warning(
        "%s is not set: the services use the DEVELOPMENT secret kept in %s. Anyone who can read"
        " that file can sign tokens: set %s to a secret of your own outside development.",
        SECRET_VARIABLE,
        DEV_SECRET_PATH,
        SECRET_VARIABLE,
    )
    env[SECRET_VARIABLE] = secret
    return TokenAuthority(secret)


def how_to_try(settings: Settings, token: str) -> str:
    gateway = settings.public_base_url
    return f"""
thumbwire is running. A token for workspace {DEMO_WORKSPACE}, valid for 24 hours (make others
with `.venv/bin/thumbwire token --workspace NAME`):
  export THUMBWIRE_TOKEN={token}
  the demo page:    {gateway}/#workspace={DEMO_WORKSPACE}&item=item-1&token={token}
  upload a photo:   .venv/bin/thumbwire upload photo.jpg --workspace demo --item item-1 --wait
  follow events:    .venv/bin/thumbwire watch --workspace demo
  or over SSE:      curl -N "{gateway}/v1/workspaces/demo/events?access_token=$THUMBWIRE_TOKEN"
  PhotoService on {settings.upload_addr}, NotifierService on {settings.notifier_addr},
  gateway on {gateway}, metrics on http://{settings.upload_metrics_addr}/metrics (upload),
  http://{settings.thumbnailer_metrics_addr}/metrics (thumbnailer), {gateway}/metrics (notifier)
Ctrl-C stops everything.
"""


def main() -> int:
    setup_logging("devstack")
    env = dict(os.environ)
    try:
        settings = Settings.from_env()
        tokens = dev_tokens(settings, env)
    except ConfigError as exc:
        log.critical("cannot start: %s", exc)
        return EXIT_CONFIG
    s3_server = None
    if settings.s3_endpoint is None:
        s3_server = EmbeddedS3Server(
            settings.s3_endpoint_or_dev, S3_DATA_DIR, settings.s3_access_key, settings.s3_secret_key
        )
        s3_server.start()
        env["THUMBWIRE_S3_ENDPOINT"] = s3_server.endpoint
        log.info("embedded S3 server on %s, data under %s", s3_server.endpoint, S3_DATA_DIR)
    stack = Stack(env)
    try:
        asyncio.run(prepare(Settings.from_env(env)))
        signal.signal(signal.SIGTERM, stack.request_stop)
        signal.signal(signal.SIGINT, stack.request_stop)
        stack.start()
        token = tokens.issue("dev", [DEMO_WORKSPACE], DEV_TOKEN_TTL_S)
        print(how_to_try(settings, token), flush=True)
        return stack.wait()
    finally:
        stack.stop()
        if s3_server is not None:
            s3_server.stop()


if __name__ == "__main__":
    sys.exit(main())
