"""One attempt at a thumbnail job, from the photo row to its three stored thumbnails and its
events; a failed attempt is retried later, or given up, here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import Protocol, TypeVar

import asyncpg

from services.core import database
from services.core.broker import BROKER_ERRORS
from services.core.database import DATABASE_ERRORS
from services.core.jobs import JobHistory, ThumbnailJob
from services.core.photos import (
    THUMBNAIL_CONTENT_TYPE,
    PhotoRecord,
    StoredThumbnail,
    ThumbnailSize,
    original_key,
    thumbnail_key,
)
from services.core.retry import RetryPolicy
from services.core.storage import ObjectStore
from services.core.topology import retry_routing_key
from services.thumbnailer import photo_state
from services.thumbnailer.failures import EXPECTED_ERRORS, Failure, FailureKind, classify
from services.thumbnailer.imaging import RenderedThumbnail, Rendition
from services.thumbnailer.photo_locks import PhotoLocks
from services.thumbnailer.stages import StageClock

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# How long a job waits for an unreachable database before its attempt counts as failed. The
# delivery stays unacked meanwhile, which must stay well under RabbitMQ's consumer timeout
# (30 minutes by default): past it the broker closes the channel and redelivers.
DATABASE_WAIT_S = 600.0


class Outcome(StrEnum):
    """What became of a delivery; it decides ack, reject or nack, and labels the metrics."""

    COMPLETED = "completed"
    RETRYING = "retrying"  # this attempt failed; the next one waits in a retry queue
    FAILED = "failed"  # given up: the photo is failed and the job parked
    DROPPED = "dropped"  # nothing to do: the photo is gone, finished, or not due
    REJECTED = "rejected"  # not a thumbnail job at all
    REQUEUED = "requeued"  # back to the queue: neither the database nor the broker took it
    INTERRUPTED = "interrupted"  # cut short by shutdown; the broker redelivers it


class Renderer(Protocol):
    async def render(self, data: bytes) -> Rendition: ...


class JobPublisher(Protocol):
    """Publishes a job straight to the broker (confirmed), for when the outbox's database is
    the thing that is down."""

    async def publish(self, job: ThumbnailJob, history: JobHistory, routing_key: str) -> None: ...


class ThumbnailProcessor:
    """Runs attempts; never raises the errors it expects, it turns them into an Outcome."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: ObjectStore,
        renderer: Renderer,
        policy: RetryPolicy | None = None,
        publisher: JobPublisher | None = None,
        on_rendered: Callable[[Rendition], None] | None = None,
        database_wait_s: float = DATABASE_WAIT_S,
    ) -> None:
        self._pool = pool
        self._store = store
        self._renderer = renderer
        self._policy = policy or RetryPolicy()
        self._publisher = publisher
        self._on_rendered = on_rendered
        self._database_wait_s = database_wait_s
        self._photo_locks = PhotoLocks()

    async def process(self, job: ThumbnailJob, history: JobHistory | None = None) -> Outcome:
        async with self._photo_locks.hold(job.photo_id):
            return await self._attempt(job, history)

    async def _attempt(self, job: ThumbnailJob, history: JobHistory | None) -> Outcome:
        history = history or JobHistory()
        attempt = history.attempt  # until the database has counted it
        clock = StageClock()
        try:
            claimed = await self._when_reachable(
                job,
                lambda: photo_state.claim(
                    self._pool, job, history.attempt, self._policy.max_attempts
                ),
            )
            if claimed is None:
                log.info("photo %s is deleted or not due: job dropped", job.photo_id)
                return Outcome.DROPPED
            if isinstance(claimed, photo_state.Exhausted):
                return await self._give_up(
                    job, claimed.attempts, _exhausted_reason(claimed, history)
                )
            clock.lap("claim")
            attempt = claimed.thumbnail_attempts
            thumbnails, placeholder = await self._render_and_store(claimed, clock)
            return await self._finish(job, thumbnails, placeholder, clock)
        except EXPECTED_ERRORS as exc:
            return await self._after_failure(job, attempt, classify(exc))

    async def _render_and_store(
        self, photo: PhotoRecord, clock: StageClock
    ) -> tuple[list[StoredThumbnail], str]:
        """The stored thumbnails and the placeholder."""
        original = await self._store.get(original_key(photo.workspace_id, photo.id))
        clock.lap("fetch")
        rendition = await self._renderer.render(original)
        clock.rendered(rendition)
        if self._on_rendered is not None:
            self._on_rendered(rendition)
        await asyncio.gather(*(self._put(photo, t) for t in rendition.thumbnails))
        clock.lap("store")
        stored = [
            StoredThumbnail(t.size, t.width, t.height, len(t.data)) for t in rendition.thumbnails
        ]
        return stored, rendition.placeholder

    async def _put(self, photo: PhotoRecord, thumbnail: RenderedThumbnail) -> None:
        key = thumbnail_key(photo.workspace_id, photo.id, thumbnail.size)
        await self._store.put(key, thumbnail.data, THUMBNAIL_CONTENT_TYPE)

    async def _finish(
        self,
        job: ThumbnailJob,
        thumbnails: list[StoredThumbnail],
        placeholder: str,
        clock: StageClock,
    ) -> Outcome:
        done = await self._when_reachable(
            job, lambda: photo_state.complete(self._pool, job, thumbnails, placeholder)
        )
        if done is not None:
            clock.lap("commit")
            log.info("photo %s: thumbnails ready (%s)", job.photo_id, clock.summary())
            return Outcome.COMPLETED
        if await photo_state.exists(self._pool, job):
            # Another delivery of the same job finished first; the keys are the same, so the
            # objects it recorded are the ones just written.
            log.info("photo %s was finished by another delivery: job dropped", job.photo_id)
            return Outcome.DROPPED
        log.info("photo %s was deleted while processing: removing its thumbnails", job.photo_id)
        keys = [thumbnail_key(job.workspace_id, job.photo_id, size) for size in ThumbnailSize]
        await self._store.delete_many(keys)
        return Outcome.DROPPED

    async def _when_reachable(self, job: ThumbnailJob, change: Callable[[], Awaitable[_T]]) -> _T:
        """`change` (a status change), once the database answers (database.when_reachable).

        A database restart or failover is nobody's attempt at the photo. Failed instead, each
        job the consumer took meanwhile climbed the ladder (30 s in all by default) and then
        came back at its last attempt until the database returned: the backlog cycled through
        the retry queues, and every photo in it was left at its last attempt, failed for good
        by the next transient error. Waiting holds the delivery, so the consumer takes no more
        jobs than its prefetch until the database is back. Past database_wait_s the error is
        raised, and the attempt counts after all.

        A change whose commit reached the server just as the connection broke is made again:
        a claim then counts one more attempt, and a completion finds the photo complete."""
        return await database.when_reachable(change, self._database_wait_s, f"photo {job.photo_id}")

    async def _after_failure(self, job: ThumbnailJob, attempt: int, failure: Failure) -> Outcome:
        log.warning(
            "photo %s: attempt %d: %s failure: %s",
            job.photo_id,
            attempt,
            failure.kind,
            failure.reason,
        )
        if failure.kind is FailureKind.PERMANENT or self._policy.is_last(attempt):
            return await self._give_up(job, attempt, failure.reason)
        return await self._retry_later(job, attempt, failure.reason)

    async def _retry_later(self, job: ThumbnailJob, attempt: int, reason: str) -> Outcome:
        delay_ms = self._policy.delay_ms(attempt)
        try:
            retrying = await photo_state.retry_later(self._pool, job, attempt, reason, delay_ms)
        except DATABASE_ERRORS:
            # The retry cannot be recorded, so its event is not sent; the job still waits its
            # turn on the ladder, and the header carries the count the database missed.
            return await self._publish_directly(job, JobHistory(attempt + 1, reason), delay_ms)
        return Outcome.RETRYING if retrying is not None else Outcome.DROPPED

    async def _give_up(self, job: ThumbnailJob, attempt: int, reason: str) -> Outcome:
        try:
            failed = await photo_state.fail(self._pool, job, reason)
        except DATABASE_ERRORS:
            # A failure that cannot be recorded must not be lost: the same attempt comes back
            # after the ladder's delay, until the database can take it.
            delay_ms = self._policy.delay_ms(attempt)
            return await self._publish_directly(job, JobHistory(attempt, reason), delay_ms)
        if failed is None:
            return Outcome.DROPPED
        log.info("photo %s failed after %d attempts: %s", job.photo_id, attempt, reason)
        return Outcome.FAILED

    async def _publish_directly(
        self, job: ThumbnailJob, history: JobHistory, delay_ms: int
    ) -> Outcome:
        if self._publisher is None:
            return Outcome.REQUEUED
        try:
            await self._publisher.publish(job, history, retry_routing_key(delay_ms))
        except BROKER_ERRORS as exc:
            log.warning(
                "photo %s: cannot reach the broker either (%s): requeued", job.photo_id, exc
            )
            return Outcome.REQUEUED
        log.warning("photo %s: database unreachable: next attempt in %d ms", job.photo_id, delay_ms)
        return Outcome.RETRYING


def _exhausted_reason(exhausted: photo_state.Exhausted, history: JobHistory) -> str:
    if history.last_error:
        return history.last_error
    return f"gave up after {exhausted.attempts} attempts: the last one never finished"
