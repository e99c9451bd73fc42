"""A RabbitMQ node of the test's own, so that a fault test can stop the broker for real
(`rabbitmqctl stop_app`) without stopping the machine's shared one."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.support.ports import free_port


class PrivateRabbitNode:
    def __init__(self, base_dir: Path, name: str) -> None:
        self.node = f"{name}@localhost"
        self.port = free_port()
        self._dist_port = free_port()
        self._base = base_dir

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self) -> PrivateRabbitNode:
        self._base.mkdir(parents=True, exist_ok=True)
        (self._base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        (self._base / "enabled_plugins").write_text("[].\n")
        if os.geteuid() == 0:  # the server script runs the node as the rabbitmq user
            shutil.chown(self._base, "rabbitmq", "rabbitmq")
            for path in self._base.iterdir():
                shutil.chown(path, "rabbitmq", "rabbitmq")
        subprocess.run(["rabbitmq-server", "-detached"], env=self._env(), check=True)
        self._await_startup()
        return self

    def _await_startup(self, timeout_s: float = 60.0) -> None:
        """Until the node answers: just after -detached it is not even registered yet."""
        deadline = time.monotonic() + timeout_s
        while self.ctl("await_startup", "--timeout", "5", check=False) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.node} did not start within {timeout_s:.0f}s")
            time.sleep(0.5)

    def stop(self) -> None:
        self.ctl("stop", check=False)

    def stop_app(self) -> None:
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self._await_startup()

    def close_all_connections(self) -> None:
        """Cuts every client connection, as a network blip or a broker failover does."""
        self.ctl("close_all_connections", "cut by a fault test")

    def ctl(self, *args: str, check: bool = True) -> str | None:
        """rabbitmqctl on this node: its output; on failure, an error or (unchecked) None."""
        result = subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.node, *args],
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=90,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {result.stderr or result.stdout}")
        return result.stdout if result.returncode == 0 else None

    def _env(self) -> dict[str, str]:
        base = str(self._base)
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self._dist_port),
            "RABBITMQ_BASE": base,
            "RABBITMQ_MNESIA_BASE": f"{base}/mnesia",
            "RABBITMQ_LOG_BASE": f"{base}/log",
            "RABBITMQ_CONFIG_FILE": f"{base}/rabbitmq",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{base}/enabled_plugins",
            "RABBITMQ_PID_FILE": f"{base}/node.pid",
        }
