"""Image work off the event loop, on every core, within limits: make_thumbnails in worker
processes, one image at a time each.

A running task cannot be interrupted, so an image that overruns the time limit (of the
worker's CPU time) has its worker killed; the next image gets a new one. The same holds for a
worker killed from outside. Each worker's memory is capped (worker.py), so no input can take
the machine's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import cast

from services.core import proc_stat
from services.core.config import Settings
from services.thumbnailer.imaging import Rendition
from services.thumbnailer.rejections import TimeLimitExceeded, TooManyBytes
from services.thumbnailer.render_priority import SAME_PRIORITY, RenderPriority
from services.thumbnailer.worker import DEFAULT_TASK
from services.thumbnailer.worker_process import WorkerProcess

log = logging.getLogger(__name__)

# A worker that has spent this many times the time limit neither computing nor waiting for a
# CPU is stuck.
STALL_FACTOR = 10
# The longest a render may take by the clock, however it was spent. The job's delivery stays
# unacked meanwhile, which must stay well under RabbitMQ's consumer timeout (30 minutes by
# default): past it the broker closes the channel and redelivers.
MAX_RENDER_WAIT_S = 600.0
# How often, at most, a render that has time left checks its worker's CPU time.
MIN_CHECK_S = 0.1


class WorkerStalled(TimeoutError):
    """The worker got nowhere for too long: stuck, or starved of CPU for MAX_RENDER_WAIT_S.
    Transient: a later attempt may get a new worker, or the CPU."""

    @classmethod
    def after(cls, wall_s: float, cpu_s: float, stuck_s: float) -> WorkerStalled:
        return cls(
            f"the image worker had no answer after {wall_s:.1f} s: it computed for"
            f" {cpu_s:.1f} s, and for {stuck_s:.1f} s it neither computed nor waited for a CPU"
        )


class _RenderClock:
    """A render's time so far, from the worker's counts as of the last read(): the CPU time it
    used, and the time it was neither computing nor waiting for a CPU (where the kernel does
    not count the waits, all of the clock's time but the CPU's)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._started = time.monotonic()
        self._cpu_s, self._scheduled_s = 0.0, None
        self.read()
        self._cpu_s_before, self._scheduled_s_before = self._cpu_s, self._scheduled_s

    def read(self) -> None:
        """Once the worker is gone its counts stay as last read; its reply says why it died."""
        with contextlib.suppress(OSError):
            self._cpu_s = proc_stat.cpu_s(self._pid)
            self._scheduled_s = proc_stat.scheduled_s(self._pid)

    def elapsed_s(self) -> float:
        return time.monotonic() - self._started

    def cpu_s(self) -> float:
        return self._cpu_s - self._cpu_s_before

    def stuck_s(self) -> float:
        if self._scheduled_s is None or self._scheduled_s_before is None:
            return self.elapsed_s() - self.cpu_s()
        return self.elapsed_s() - (self._scheduled_s - self._scheduled_s_before)


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = 100_000_000
    max_bytes: int = 32 * 1024 * 1024
    time_limit_s: float = 30.0  # of the worker's CPU time for one image
    memory_limit_mb: int = 2048  # 0: unlimited
    # The workers' share of the CPU beside other work: the default here is the pool's own.
    priority: RenderPriority = SAME_PRIORITY

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLimits:
        return cls(
            max_pixels=settings.max_pixels,
            max_bytes=settings.max_upload_bytes,
            time_limit_s=settings.image_time_limit_s,
            memory_limit_mb=settings.image_memory_limit_mb,
            priority=RenderPriority.parse(settings.render_priority),
        )


class RenderPool:
    """`workers` processes, started when first needed; `task` ("module:function", called as
    task(data, max_pixels)) is what they run: make_thumbnails, or a stand-in in tests."""

    def __init__(self, workers: int, limits: ImageLimits, task: str = DEFAULT_TASK) -> None:
        self._limits = limits
        self._task = task
        self._workers = workers
        # One entry per worker slot: its process, or None until one is (re)started.
        self._idle: asyncio.Queue[WorkerProcess | None] = asyncio.Queue()
        for _ in range(workers):
            self._idle.put_nowait(None)
        self._running: set[WorkerProcess] = set()

    async def render(self, data: bytes) -> Rendition:
        """Thumbnails of `data`. Raises ImageRejected subclasses for images that can never
        work (TimeLimitExceeded, MemoryLimitExceeded included), and BrokenProcessPool if the
        worker died."""
        if len(data) > self._limits.max_bytes:
            raise TooManyBytes.beyond(len(data), self._limits.max_bytes)
        worker = await self._take()
        try:
            status, value = await self._call(worker, data)
        except BaseException:
            self._discard(worker)
            raise
        self._idle.put_nowait(worker)
        if status == "error":
            assert isinstance(value, BaseException)
            raise value
        return cast(Rendition, value)  # what the task returns: make_thumbnails' Rendition

    def worker_pids(self) -> list[int]:
        """The worker processes' ids (for fault tests and operators)."""
        return [w.pid for w in self._running if w.alive]

    async def close(self) -> None:
        """Waits for the running renders (each ends within MAX_RENDER_WAIT_S), then stops every
        worker."""
        for _ in range(self._workers):
            worker = await self._idle.get()
            if worker is not None:
                self._running.discard(worker)
                await worker.stop()

    async def _take(self) -> WorkerProcess:
        worker = await self._idle.get()
        if worker is not None and worker.alive:
            return worker
        if worker is not None:  # died while idle (killed from outside)
            self._running.discard(worker)
        try:
            limits = self._limits
            worker = await WorkerProcess.start(
                limits.memory_limit_mb, self._task, limits.priority, limits.max_bytes
            )
        except BaseException:
            self._idle.put_nowait(None)
            raise
        self._running.add(worker)
        return worker

    async def _call(self, worker: WorkerProcess, data: bytes) -> tuple[str, object]:
        """The worker's reply, within the time limit of the worker's CPU time.

        CPU time, not the clock's: a worker at a low priority (THUMBWIRE_RENDER_PRIORITY) on a
        machine busy with uploads takes longer by the clock for the same image, and failing the
        photo for good for that would lose photos to load. Its waits for a CPU are not held
        against it either. A worker that spends STALL_FACTOR times the limit neither computing
        nor waiting for a CPU (stopped, or stuck), or that still has no answer after
        MAX_RENDER_WAIT_S, fails the attempt as WorkerStalled, which is retried later."""
        limit_s = self._limits.time_limit_s
        stall_limit_s = limit_s * STALL_FACTOR
        clock = _RenderClock(worker.pid)
        reply = asyncio.ensure_future(worker.call(data, self._limits.max_pixels))
        try:
            while True:
                clock.read()
                used_s = clock.cpu_s()
                if used_s >= limit_s:
                    log.warning(
                        "an image overran the %g s limit: killing worker %d", limit_s, worker.pid
                    )
                    raise TimeLimitExceeded.after(limit_s)
                stuck_s, elapsed_s = clock.stuck_s(), clock.elapsed_s()
                if stuck_s >= stall_limit_s or elapsed_s >= MAX_RENDER_WAIT_S:
                    log.warning("worker %d made no progress: killing it", worker.pid)
                    raise WorkerStalled.after(elapsed_s, used_s, stuck_s)
                # asyncio.wait, not asyncio.timeout: a reply arriving just as the wait ends
                # would leave this task with a cancellation that asyncio.timeout (in 3.11)
                # does not take back.
                wait_s = min(
                    max(limit_s - used_s, MIN_CHECK_S),
                    stall_limit_s - stuck_s,
                    MAX_RENDER_WAIT_S - elapsed_s,
                )
                done, _ = await asyncio.wait({reply}, timeout=wait_s)
                if done:
                    return reply.result()
        finally:
            reply.cancel()  # a no-op once it is done

    def _discard(self, worker: WorkerProcess) -> None:
        """Kills a worker that timed out, died, or whose caller was cancelled mid-task (its
        reply would be read by the next caller); its slot gets a new process when next used."""
        worker.kill()
        self._running.discard(worker)
        self._idle.put_nowait(None)
