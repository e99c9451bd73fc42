"""Queuing photos again: a failed photo's fresh start (RetryThumbnails, `thumbwire dlq
replay`), and the next attempt of an unfinished one (the sweeper, `thumbwire backfill`)."""

from __future__ import annotations

import uuid

import asyncpg

from services.core.jobs import JobHistory, ThumbnailJob, enqueue_job
from services.core.photos import PHOTO_COLUMNS, PhotoRecord

_RESET_FAILED = f"""
UPDATE photos SET thumbnail_status = 'pending', thumbnail_attempts = 0, thumbnail_error = '',
                  updated_at = clock_timestamp()
 WHERE id = $1 AND workspace_id = $2 AND thumbnail_status = 'failed'
RETURNING {PHOTO_COLUMNS}"""


async def requeue_failed(
    pool: asyncpg.Pool, workspace_id: str, photo_id: uuid.UUID
) -> PhotoRecord | None:
    """A failed photo back to pending with its attempts reset, and a first-attempt job, in one
    transaction. None when the photo is not failed (or does not exist)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(_RESET_FAILED, photo_id, workspace_id)
        if row is None:
            return None
        photo = PhotoRecord.from_row(row)
        await enqueue_job(conn, ThumbnailJob(photo.workspace_id, photo.id))
        return photo


async def enqueue_next_attempt(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    """A job for an unfinished photo's next attempt, carrying its last error; `row` has its
    id, workspace_id, thumbnail_attempts and thumbnail_error. Call inside a transaction."""
    job = ThumbnailJob(row["workspace_id"], row["id"])
    history = JobHistory(row["thumbnail_attempts"] + 1, row["thumbnail_error"])
    await enqueue_job(conn, job, history)
