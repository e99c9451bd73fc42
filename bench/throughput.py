"""Every core: the render pool's images per second with one worker process and with one per
core, on the 12 MP JPEG."""

from __future__ import annotations

import asyncio
import os
import time

from bench.photos import originals
from services.thumbnailer.rendering import ImageLimits, RenderPool

IMAGES = 16


async def images_per_second(workers: int, data: bytes, images: int = IMAGES) -> float:
    pool = RenderPool(workers, ImageLimits())
    try:
        await asyncio.gather(*(pool.render(data) for _ in range(workers)))  # start the workers
        started = time.perf_counter()
        await asyncio.gather(*(pool.render(data) for _ in range(images)))
        return images / (time.perf_counter() - started)
    finally:
        await pool.close()


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
