"""Waiting on the thumbnailer's work from a test: its outcomes, a photo's status, its events."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from services.core.events import EventRecord, events_after
from services.core.jobs import JobHistory, ThumbnailJob
from services.core.photos import PhotoRecord, fetch_photo
from services.thumbnailer.metrics import ThumbnailerMetrics
from services.thumbnailer.processing import Outcome, ThumbnailProcessor

WAIT_S = 20.0


class RecordingProcessor(ThumbnailProcessor):
    """The real processor, noting each job's outcome so a test can wait for its own job."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.outcomes: dict[uuid.UUID, list[Outcome]] = {}

    async def process(self, job: ThumbnailJob, history: JobHistory | None = None) -> Outcome:
        outcome = await super().process(job, history)
        self.outcomes.setdefault(job.photo_id, []).append(outcome)
        return outcome


@dataclass
class Thumbnailer:
    processor: RecordingProcessor
    metrics: ThumbnailerMetrics

    async def outcomes(self, photo: PhotoRecord, count: int = 1) -> list[Outcome]:
        """The outcomes of the photo's jobs, once `count` of them have ended."""
        await wait_until(lambda: _async(len(self.processor.outcomes.get(photo.id, [])) >= count))
        return self.processor.outcomes[photo.id]


async def _async(value: bool) -> bool:
    return value


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout_s: float = WAIT_S) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if await condition():
                return
            await asyncio.sleep(0.05)


async def wait_for_status(
    pool: asyncpg.Pool, photo: PhotoRecord, timeout_s: float = WAIT_S
) -> PhotoRecord:
    """The photo once it is complete or failed."""

    async def finished() -> bool:
        current = await fetch_photo(pool, photo.workspace_id, photo.id)
        return current is not None and current.thumbnail_status in ("complete", "failed")

    await wait_until(finished, timeout_s)
    current = await fetch_photo(pool, photo.workspace_id, photo.id)
    assert current is not None
    return current


async def photo_events(pool: asyncpg.Pool, photo: PhotoRecord) -> list[EventRecord]:
    return [e for e in await events_after(pool, photo.workspace_id, 0) if e.photo_id == photo.id]
