"""A stand-in for make_thumbnails that a RenderPool's workers run in tests (by name:
STAND_IN): it answers with its process id, or misbehaves as the data asks."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

STAND_IN = "tests.support.worker_tasks:pid_or_misbehave"
DIGEST = "tests.support.worker_tasks:digest"
PAUSE = b"pause"
_SPIN = b"spin:"
_HANG = b"hang:"
_WORK = b"work:"


def spin_noting_pid_in(path: Path) -> bytes:
    """Data that makes the worker write its pid to `path`, then compute for ever, as a
    hostile file can make a decoder do."""
    return _SPIN + str(path).encode()


def hang_noting_pid_in(path: Path) -> bytes:
    """Data that makes the worker write its pid to `path`, then wait for ever without
    computing, as a worker stuck on a lock would."""
    return _HANG + str(path).encode()


def work_noting_pid_in(path: Path, cpu_s: float) -> bytes:
    """Data that makes the worker write its pid to `path`, then compute for `cpu_s` of its own
    CPU time, and answer."""
    return _WORK + f"{cpu_s}:{path}".encode()


def pid_or_misbehave(data: bytes, max_pixels: int) -> int:
    if data.startswith(_SPIN):
        _note_pid(data[len(_SPIN) :].decode())
        while True:
            pass
    if data.startswith(_HANG):
        _note_pid(data[len(_HANG) :].decode())
        while True:
            time.sleep(3600)
    if data.startswith(_WORK):
        cpu_s, path = data[len(_WORK) :].decode().split(":", 1)
        _note_pid(path)
        until = time.process_time() + float(cpu_s)
        while time.process_time() < until:
            pass
    if data == PAUSE:
        time.sleep(0.5)
    return os.getpid()


def digest(data: bytes, max_pixels: int) -> str:
    """What the worker received: its SHA-256."""
    return hashlib.sha256(data).hexdigest()


def _note_pid(path: str) -> None:
    Path(path).write_text(str(os.getpid()))
