"""An image worker process: `python -m services.thumbnailer.worker`, started by RenderPool.

It runs one task at a time, read from stdin, and writes the reply to stdout. Its memory is
capped, so that whatever an image asks for, the process gets a MemoryError (a permanent
failure) instead of the machine's memory."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import importlib
import os
import pickle
import resource
import signal
import sys
from collections.abc import Callable
from typing import BinaryIO

from services.thumbnailer import frames
from services.thumbnailer.rejections import MemoryLimitExceeded
from services.thumbnailer.render_priority import RenderPriority
from services.thumbnailer.shared_buffer import SharedBuffer

DEFAULT_TASK = "services.thumbnailer.imaging:make_thumbnails"
# The pipes' capacity: 1 MiB, the most an unprivileged process may ask for by default
# (/proc/sys/fs/pipe-max-size). At the default 64 KiB, a 3.5 MB original crossed in 55 turns of
# the thumbnailer's event loop and this process's reads, each a wake-up of the other side. The
# originals now come through shared memory (shared_buffer.py); the replies, which carry the
# thumbnails (about 60 KB for a 12 MP JPEG, more for large sizes), still cross the pipe.
PIPE_BYTES = 1024 * 1024
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
Task = Callable[[bytes, int], object]


def main(argv: list[str] | None = None) -> None:
    # The render pool decides when a worker ends (it closes stdin once the jobs are done, or
    # kills it). Ctrl-C in a terminal (`make run`) sends SIGINT to the whole process group:
    # without this the workers died mid-image with a KeyboardInterrupt, and the thumbnailer's
    # graceful stop had no workers to finish its jobs with.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    args = _parse(argv)
    if args.parent_pid:
        die_with(args.parent_pid)
    # Replies go to a copy of stdout; fd 1 becomes stderr, so that nothing a library prints
    # can corrupt them.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    widen_pipe(0)
    widen_pipe(replies.fileno())
    limit_memory(args.memory_limit_mb)
    RenderPriority.parse(args.priority).apply()
    task = load_task(args.task)
    shared = SharedBuffer(args.shared_fd)
    frames.write(replies, frames.READY)
    serve(task, sys.stdin.buffer, shared, replies, args.memory_limit_mb)


def die_with(parent: int) -> None:
    """SIGKILL for this worker when `parent` (the thumbnailer) dies, however it dies. The
    render pool enforces the time limit by killing a worker, so one that outlived its pool
    while spinning on a hostile image would compute for ever; and a lowered worker is in a
    session of its own (render_priority.py), out of reach of signals to the thumbnailer's
    process group. Linux ties this to the thread that started the worker: the thumbnailer's
    event loop, which lives as long as the process."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def widen_pipe(fd: int, size: int = PIPE_BYTES) -> None:
    """Grows the pipe on `fd` to `size` bytes; before the worker says it is ready, so that the
    first request already crosses in fewer, larger writes. Measured with a worker that does
    nothing, 3.5 MB a call: 5.8 ms per call and 3.5 ms of the caller's CPU at 64 KiB, 2.3 ms and
    2.0 ms at 1 MiB. Where the system allows less (or fd is no pipe), the pipe stays as it is."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)


def limit_memory(limit_mb: int) -> None:
    """Caps the process's data segment and anonymous mappings (RLIMIT_DATA), which is where
    decoded pixels live; 0 leaves the process unlimited."""
    if limit_mb > 0:
        limit = limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


def load_task(spec: str) -> Task:
    """ "module:function", as RenderPool names it."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def serve(
    task: Task, requests: BinaryIO, shared: SharedBuffer, replies: BinaryIO, memory_limit_mb: int
) -> None:
    """Answers requests until stdin closes: the pool's way of stopping a worker. A request is
    the length of the data in the shared buffer and the pixel limit."""
    while (request := frames.read(requests)) is not None:
        length, max_pixels = pickle.loads(request)
        frames.write(replies, run(task, shared.read(length), max_pixels, memory_limit_mb))


def run(task: Task, data: bytes, max_pixels: int, memory_limit_mb: int) -> bytes:
    """The pickled ("ok", result) or ("error", exception)."""
    try:
        return pickle.dumps(("ok", task(data, max_pixels)))
    except MemoryError:
        error: BaseException = MemoryLimitExceeded.beyond(memory_limit_mb)
    except Exception as exc:  # any error is the caller's to judge, as in a process pool
        error = exc
    try:
        return pickle.dumps(("error", error))
    except (pickle.PicklingError, TypeError, AttributeError):
        return pickle.dumps(("error", RuntimeError(repr(error))))


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memory-limit-mb", type=int, default=0)
    parser.add_argument("--priority", default="0", help="idle, or niceness to add (0-19)")
    parser.add_argument("--task", default=DEFAULT_TASK)
    parser.add_argument("--shared-fd", type=int, required=True, help="the inputs' memfd")
    parser.add_argument("--parent-pid", type=int, default=0, help="die with this process")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
