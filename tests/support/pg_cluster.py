"""A PostgreSQL server of the test's own, so that a fault test can restart the database for
real without disturbing the machine's shared one."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.ports import free_port

_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


class PrivatePostgres:
    def __init__(self, base_dir: Path) -> None:
        self.port = free_port()
        self._base = base_dir
        self._data = base_dir / "data"
        self._bin = _BIN[-1] if _BIN else Path(shutil.which("pg_ctl") or "pg_ctl").parent

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PrivatePostgres:
        self._base.mkdir(parents=True, exist_ok=True)
        self._chown()
        self._run("initdb", "-D", str(self._data), "-A", "trust", "-U", "postgres")
        self._pg_ctl("start")
        return self

    def restart(self) -> None:
        """A fast restart: every connection is cut, then the server accepts new ones."""
        self._pg_ctl("restart")

    def shut_down(self) -> None:
        """A fast shutdown, until start_again(): connections are cut, new ones refused."""
        self._pg_ctl("stop")

    def start_again(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self._data), "-m", "immediate", "stop", check=False)

    def _pg_ctl(self, action: str) -> None:
        options = f"-p {self.port} -k {self._base} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self._data), "-m", "fast", "-w", "-o", options,
            "-l", str(self._base / "server.log"), action,
        )  # fmt: skip

    def _chown(self) -> None:
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self._base, "postgres", "postgres")

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        command = [str(self._bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{program} {args[-1]}: {result.stderr or result.stdout}")
