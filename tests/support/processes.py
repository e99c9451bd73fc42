"""Services as real processes, configured through the THUMBWIRE_* environment."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from services.core.config import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes Settings.from_env() return `settings`."""
    return settings.to_env()


class ServiceProcess:
    """`python -m services.<name>`, its output kept in a log file for failure reports."""

    def __init__(self, name: str, settings: Settings, log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._settings = settings
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"],
                env=settings_env(self._settings),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, f"{self.name} was not started"
        return self._process

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then the exit code; SIGKILL (and an AssertionError) past the timeout."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            waited = time.monotonic() - started
            self.process.send_signal(signal.SIGUSR1)  # its threads' and tasks' stacks
            time.sleep(1.0)
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"{self.name} did not exit within {waited:.0f}s of SIGTERM; its last output,"
                f" with every thread's and task's stack:\n{self.output()[-20000:]}"
            ) from None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")
