"""One thumbnail job, from the photo row to its three stored thumbnails and its events."""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum
from typing import Protocol

import asyncpg

from services.core.database import DATABASE_ERRORS
from services.core.jobs import ThumbnailJob
from services.core.photos import (
    THUMBNAIL_CONTENT_TYPE,
    PhotoRecord,
    StoredThumbnail,
    ThumbnailSize,
    original_key,
    thumbnail_key,
)
from services.core.storage import ObjectStore
from services.thumbnailer import photo_state
from services.thumbnailer.failures import EXPECTED_ERRORS, Failure, classify
from services.thumbnailer.imaging import RenderedThumbnail, Rendition

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    """What became of a job; it decides ack, reject or nack, and labels the metrics."""

    COMPLETED = "completed"
    FAILED = "failed"
    DROPPED = "dropped"  # nothing to do: the photo is gone, finished, or not due
    REJECTED = "rejected"  # not a thumbnail job at all
    REQUEUED = "requeued"  # back to the queue: the failure could not even be recorded
    INTERRUPTED = "interrupted"  # cut short by shutdown; the broker redelivers it


class Renderer(Protocol):
    async def render(self, data: bytes) -> Rendition: ...


class ThumbnailProcessor:
    """Runs jobs; never raises the errors it expects, it turns them into an Outcome."""

    def __init__(self, pool: asyncpg.Pool, store: ObjectStore, renderer: Renderer) -> None:
        self._pool = pool
        self._store = store
        self._renderer = renderer

    async def process(self, job: ThumbnailJob) -> Outcome:
        try:
            return await self._process(job)
        except EXPECTED_ERRORS as exc:
            return await self._handle_failure(job, classify(exc))

    async def _process(self, job: ThumbnailJob) -> Outcome:
        # The claim's guard is the one check of whether the job is due: a separate look-up
        # first would cost a query per job and could still be outdated by the claim.
        claimed = await photo_state.claim(self._pool, job.workspace_id, job.photo_id)
        if claimed is None:
            log.info("photo %s is deleted or not due (complete, failed): job dropped", job.photo_id)
            return Outcome.DROPPED
        thumbnails, placeholder = await self._render_and_store(claimed)
        return await self._finish(job, thumbnails, placeholder)

    async def _render_and_store(self, photo: PhotoRecord) -> tuple[list[StoredThumbnail], str]:
        """The stored thumbnails and the placeholder."""
        original = await self._store.get(original_key(photo.workspace_id, photo.id))
        rendition = await self._renderer.render(original)
        await asyncio.gather(*(self._put(photo, t) for t in rendition.thumbnails))
        stored = [
            StoredThumbnail(t.size, t.width, t.height, len(t.data)) for t in rendition.thumbnails
        ]
        return stored, rendition.placeholder

    async def _put(self, photo: PhotoRecord, thumbnail: RenderedThumbnail) -> None:
        key = thumbnail_key(photo.workspace_id, photo.id, thumbnail.size)
        await self._store.put(key, thumbnail.data, THUMBNAIL_CONTENT_TYPE)

    async def _finish(
        self, job: ThumbnailJob, thumbnails: list[StoredThumbnail], placeholder: str
    ) -> Outcome:
        done = await photo_state.complete(
            self._pool, job.workspace_id, job.photo_id, thumbnails, placeholder=placeholder
        )
        if done is not None:
            log.info("photo %s: thumbnails ready", job.photo_id)
            return Outcome.COMPLETED
        if await photo_state.exists(self._pool, job.workspace_id, job.photo_id):
            # Another delivery of the same job finished first; the keys are the same, so the
            # objects it recorded are the ones just written.
            log.info("photo %s was finished by another delivery: job dropped", job.photo_id)
            return Outcome.DROPPED
        log.info("photo %s was deleted while processing: removing its thumbnails", job.photo_id)
        keys = [thumbnail_key(job.workspace_id, job.photo_id, size) for size in ThumbnailSize]
        await self._store.delete_many(keys)
        return Outcome.DROPPED

    async def _handle_failure(self, job: ThumbnailJob, failure: Failure) -> Outcome:
        log.warning("photo %s: %s failure: %s", job.photo_id, failure.kind, failure.reason)
        # The first, simple path: every failure fails the photo at once, when the database can
        # record it. The retry ladder will send FailureKind.TRANSIENT to a delayed retry here.
        return await self._fail_photo(job, failure)

    async def _fail_photo(self, job: ThumbnailJob, failure: Failure) -> Outcome:
        try:
            failed = await photo_state.fail(
                self._pool, job.workspace_id, job.photo_id, failure.reason
            )
        except DATABASE_ERRORS as exc:
            log.warning("photo %s: cannot record the failure (%s): job requeued", job.photo_id, exc)
            return Outcome.REQUEUED
        return Outcome.FAILED if failed is not None else Outcome.DROPPED
