"""A stand-in for make_thumbnails that a RenderPool's workers run in tests (by name:
STAND_IN): it answers with its process id, or misbehaves as the data asks."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

STAND_IN = "tests.support.worker_tasks:pid_or_hang"
DIGEST = "tests.support.worker_tasks:digest"
PAUSE = b"pause"
_HANG = b"hang:"


def hang_noting_pid_in(path: Path) -> bytes:
    """Data that makes the worker write its pid to `path`, then hang for ever, as a hostile
    file could."""
    return _HANG + str(path).encode()


def pid_or_hang(data: bytes, max_pixels: int) -> int:
    if data.startswith(_HANG):
        Path(data[len(_HANG) :].decode()).write_text(str(os.getpid()))
        while True:
            time.sleep(3600)
    if data == PAUSE:
        time.sleep(0.5)
    return os.getpid()


def digest(data: bytes, max_pixels: int) -> str:
    """What the worker received: its SHA-256."""
    return hashlib.sha256(data).hexdigest()
