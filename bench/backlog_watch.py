"""What the thumbnailer was doing while uploads were measured: the photos waiting for it
(pending in the database, sampled every quarter second), the thumbnails it finished, and its CPU
time (its render workers included), so that "saturated" is shown, not assumed.

Pending photos, not the queue's depth: the sync baseline's jobs go to the same queue, but their
photos are complete before the job is read, and the thumbnailer drops them at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bench.upload_stack import UploadStack

SAMPLE_EVERY_S = 0.25


@dataclass
class Backlog:
    """Summed over every stretch watched."""

    waiting: list[int] = field(default_factory=list)  # pending photos, one per sample
    completed: int = 0  # photos whose thumbnails were finished meanwhile
    cpu_s: float = 0.0  # the thumbnailer's
    wall_s: float = 0.0

    @property
    def least_waiting(self) -> int:
        return min(self.waiting, default=0)

    @property
    def cores(self) -> float:
        """The thumbnailer's CPU seconds per second."""
        return self.cpu_s / self.wall_s if self.wall_s else 0.0


@contextlib.asynccontextmanager
async def watching(
    stack: UploadStack, backlog: Backlog, thumbnailer: str = "thumbnailer"
) -> AsyncIterator[None]:
    """Adds the block's stretch to `backlog`."""
    completed = await stack.photos("complete")
    cpu = stack.cpu_s(thumbnailer)
    started = time.perf_counter()
    sampler = asyncio.create_task(_sample(stack, backlog.waiting))
    try:
        yield
    finally:
        sampler.cancel()
        await asyncio.wait({sampler})
    backlog.wall_s += time.perf_counter() - started
    backlog.cpu_s += stack.cpu_s(thumbnailer) - cpu
    backlog.completed += await stack.photos("complete") - completed


async def _sample(stack: UploadStack, into: list[int]) -> None:
    while True:
        into.append(await stack.photos("pending"))
        await asyncio.sleep(SAMPLE_EVERY_S)
