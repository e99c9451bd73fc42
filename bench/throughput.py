"""Every core: the render pool's images per second with one worker process and with one per
core, on the 12 MP JPEG."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from bench.photos import originals
from services.core.proc_stat import cpu_s
from services.thumbnailer.rendering import ImageLimits, RenderPool

IMAGES = 16


@dataclass(frozen=True)
class KernelRun:
    images_per_s: float
    # CPU of the workers and of this thread (the pool's side: pipes, pickles) per image; the
    # thread's alone, since a benchmark's other threads (gRPC's) may share the process.
    cpu_ms_per_image: float


def bracketing(before: KernelRun, after: KernelRun) -> KernelRun:
    """Two runs of as many images, one before and one after what they are compared with: as
    one run of both, so that a drift of the machine's speed falls on both sides alike."""
    seconds_per_image = (1 / before.images_per_s + 1 / after.images_per_s) / 2
    return KernelRun(1 / seconds_per_image, (before.cpu_ms_per_image + after.cpu_ms_per_image) / 2)


async def kernel_run(workers: int, data: bytes, images: int = IMAGES) -> KernelRun:
    pool = RenderPool(workers, ImageLimits())
    try:
        await asyncio.gather(*(pool.render(data) for _ in range(workers)))  # start the workers
        pids = pool.worker_pids()
        cpu_before = time.thread_time() + sum(cpu_s(pid) for pid in pids)
        started = time.perf_counter()
        await asyncio.gather(*(pool.render(data) for _ in range(images)))
        elapsed = time.perf_counter() - started
        cpu = time.thread_time() + sum(cpu_s(pid) for pid in pids) - cpu_before
        return KernelRun(images / elapsed, cpu * 1000 / images)
    finally:
        await pool.close()


async def images_per_second(workers: int, data: bytes, images: int = IMAGES) -> float:
    return (await kernel_run(workers, data, images)).images_per_s


def run() -> list[str]:
    data = originals()[0].path.read_bytes()
    cores = os.cpu_count() or 1
    one = asyncio.run(images_per_second(1, data))
    every = asyncio.run(images_per_second(cores, data))
    return [
        f"## Throughput: the render pool, {IMAGES} renders of the 12 MP JPEG",
        "",
        "| worker processes | images per second | against one |",
        "|---|---|---|",
        f"| 1 | {one:.1f} | 1.00x |",
        f"| {cores} (one per core) | {every:.1f} | {every / one:.2f}x |",
    ]
