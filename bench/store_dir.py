"""The benchmarks' stand-in object store (rclone serve s3), and where it keeps its files: in
memory (/dev/shm) where the machine has room for them, so that its writes do not share a disk with
PostgreSQL's WAL, as an object store's do not in a deployment.

On this VM's one disk they did (2026-12-03, the upload latency section, sampled every 10 ms):
eight clients storing 3 MB originals put 150 MB/s into the page cache; whenever it reached the
kernel's background threshold (10% of memory, about 2.3 GB), the flush took the disk, the
WAL's fsyncs at commit waited behind it (some task stalled on IO 56-88% of the time), and the
uploads with them, queued on the workspace's event lock: clusters of uploads ending together
after 250-700 ms, in whichever phase's batch the flush fell."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.fanout_stack import free_address
from services.core.s3_server import EmbeddedS3Server

MEMORY = Path("/dev/shm")
# Room for the largest section's objects: the upload latency section stores about 6.5 GB.
ROOM_BYTES = 10 * 1024**3


@contextlib.contextmanager
def stand_in_store() -> Iterator[EmbeddedS3Server]:
    """The benchmarks' object store, serving until the block ends (files in store_dir())."""
    with store_dir() as data_dir:
        s3 = EmbeddedS3Server(f"http://{free_address()}", data_dir, "minioadmin", "minioadmin")
        s3.start()
        try:
            yield s3
        finally:
            s3.stop()


@contextlib.contextmanager
def store_dir() -> Iterator[Path]:
    """A new directory for the store's files, in memory if there is room; removed after."""
    parent = MEMORY if _has_room(MEMORY) else None
    path = Path(tempfile.mkdtemp(prefix="thumbwire-bench-s3-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def where(path: Path) -> str:
    """For a section's method text."""
    if path.is_relative_to(MEMORY):
        return f"its files in memory ({MEMORY}), off the database's disk"
    return "its files on disk, beside the database's (no room for them in memory)"


def _has_room(directory: Path) -> bool:
    try:
        return shutil.disk_usage(directory).free >= ROOM_BYTES
    except OSError:
        return False
