"""The thumbnailer's status changes, each one statement with its event (events.change_photo),
and for a retry or a failure, the job's next message through the outbox.

Every UPDATE is guarded by the status it expects, so that a redelivered job, a concurrent
worker or a deletion in the meantime turns a change into a no-op (None) instead of a wrong
state or a second event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from services.core.events import EventType, change_photo
from services.core.jobs import JobHistory, ThumbnailJob, enqueue_job, job_message
from services.core.outbox import OutboxMessage
from services.core.photos import PHOTO_COLUMNS, PhotoRecord, StoredThumbnail
from services.core.topology import PARKED_ROUTING_KEY, retry_routing_key

# The attempt is the later of the header's count and one more than the row's: a delivery
# that comes back after a crash (same header) still counts as a new attempt, and a count the
# database missed while it was unreachable (the header ran ahead) is caught up.
_NEXT_ATTEMPT = "GREATEST(thumbnail_attempts + 1, $3)"

_CLAIM = f"""
UPDATE photos SET thumbnail_status = 'processing', thumbnail_attempts = {_NEXT_ATTEMPT},
                  updated_at = clock_timestamp()
 WHERE id = $1 AND workspace_id = $2 AND thumbnail_status IN ('pending', 'processing')
   AND {_NEXT_ATTEMPT} <= $4
RETURNING {PHOTO_COLUMNS}"""

_ATTEMPTS_IF_UNFINISHED = """
SELECT thumbnail_attempts FROM photos
 WHERE id = $1 AND workspace_id = $2 AND thumbnail_status IN ('pending', 'processing')"""

_COMPLETE = f"""
UPDATE photos SET thumbnail_status = 'complete', thumbnails = $3, thumbnail_error = '',
                  placeholder = $4, updated_at = clock_timestamp()
 WHERE id = $1 AND workspace_id = $2 AND thumbnail_status = 'processing'
RETURNING {PHOTO_COLUMNS}"""

_RETRY_LATER = f"""
UPDATE photos SET thumbnail_status = 'pending', thumbnail_error = $3,
                  updated_at = clock_timestamp()
 WHERE id = $1 AND workspace_id = $2 AND thumbnail_status IN ('pending', 'processing')
RETURNING {PHOTO_COLUMNS}"""

_FAIL = f"""
UPDATE photos SET thumbnail_status = 'failed', thumbnail_error = $3,
                  updated_at = clock_timestamp()
 WHERE id = $1 AND workspace_id = $2 AND thumbnail_status IN ('pending', 'processing')
RETURNING {PHOTO_COLUMNS}"""


@dataclass(frozen=True)
class Exhausted:
    """The photo is due, but every attempt it may have has been made."""

    attempts: int


async def claim(
    pool: asyncpg.Pool, job: ThumbnailJob, attempt: int, max_attempts: int
) -> PhotoRecord | Exhausted | None:
    """pending/processing -> processing as the next attempt; Exhausted if that would be one
    too many; None if the photo is not due (deleted, complete or failed)."""
    args = (job.photo_id, job.workspace_id, attempt, max_attempts)
    claimed = await _transition(pool, _CLAIM, args, EventType.PROCESSING)
    if claimed is not None:
        return claimed
    attempts = await pool.fetchval(_ATTEMPTS_IF_UNFINISHED, job.photo_id, job.workspace_id)
    return None if attempts is None else Exhausted(attempts)


async def complete(
    pool: asyncpg.Pool,
    job: ThumbnailJob,
    thumbnails: Sequence[StoredThumbnail],
    placeholder: str = "",
) -> PhotoRecord | None:
    """processing -> complete with its thumbnails and placeholder; None if deleted or
    finished elsewhere."""
    stored = [t.to_json() for t in thumbnails]
    args = (job.photo_id, job.workspace_id, stored, placeholder)
    return await _transition(pool, _COMPLETE, args, EventType.READY)


async def retry_later(
    pool: asyncpg.Pool, job: ThumbnailJob, attempt: int, reason: str, delay_ms: int
) -> PhotoRecord | None:
    """pending/processing -> pending after failed `attempt`, a photo.thumbnail_retrying event,
    and attempt + 1 on the retry queue of `delay_ms`; None if deleted or finished elsewhere.

    Pending is accepted too: an attempt whose claim the database missed (it was unreachable)
    and which failed on it must still go on to the next attempt."""
    next_attempt = job_message(job, JobHistory(attempt + 1, reason), retry_routing_key(delay_ms))
    args = (job.photo_id, job.workspace_id, reason)
    return await _transition(
        pool,
        _RETRY_LATER,
        args,
        EventType.RETRYING,
        error=reason,
        retry_delay_ms=delay_ms,
        also=next_attempt,
    )


async def fail(pool: asyncpg.Pool, job: ThumbnailJob, reason: str) -> PhotoRecord | None:
    """pending/processing -> failed with `reason`, its one photo.thumbnail_failed event, and
    the job parked for `thumbwire dlq`; None if deleted or finished elsewhere."""
    args = (job.photo_id, job.workspace_id, reason)
    async with pool.acquire() as conn, conn.transaction():
        # A transaction of its own: the parked job carries the attempts the database counted.
        failed = await change_photo(conn, _FAIL, args, EventType.FAILED, error=reason)
        if failed is None or failed.photo is None:
            return None
        history = JobHistory(failed.photo.thumbnail_attempts, reason)
        await enqueue_job(conn, job, history, PARKED_ROUTING_KEY)
        return failed.photo


async def exists(pool: asyncpg.Pool, job: ThumbnailJob) -> bool:
    found = await pool.fetchval(
        "SELECT true FROM photos WHERE id = $1 AND workspace_id = $2",
        job.photo_id,
        job.workspace_id,
    )
    return bool(found)


async def _transition(
    pool: asyncpg.Pool,
    sql: str,
    args: tuple[object, ...],
    event_type: EventType,
    error: str = "",
    retry_delay_ms: int = 0,
    also: OutboxMessage | None = None,
) -> PhotoRecord | None:
    """One round trip, committed on its own (events.change_photo)."""
    changed = await change_photo(pool, sql, args, event_type, error, retry_delay_ms, also)
    return changed.photo if changed else None
