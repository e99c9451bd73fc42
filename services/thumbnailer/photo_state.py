"""The thumbnailer's status changes, each one transaction with its event.

Every UPDATE is guarded by the status it expects, so that a redelivered job, a concurrent
worker or a deletion in the meantime turns a change into a no-op (None) instead of a wrong
state or a second event."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg

from services.core.events import EventType, record_event
from services.core.photos import PHOTO_COLUMNS, PhotoRecord, StoredThumbnail

_CLAIM = f"""
UPDATE photos SET thumbnail_status = 'processing',
                  thumbnail_attempts = thumbnail_attempts + 1,
                  updated_at = clock_timestamp()
 WHERE id = $1 AND workspace_id = $2 AND thumbnail_status IN ('pending', 'processing')
RETURNING {PHOTO_COLUMNS}"""

_COMPLETE = f"""
UPDATE photos SET thumbnail_status = 'complete', thumbnails = $3, thumbnail_error = '',
                  placeholder = $4, updated_at = clock_timestamp()
 WHERE id = $1 AND workspace_id = $2 AND thumbnail_status = 'processing'
RETURNING {PHOTO_COLUMNS}"""

_FAIL = f"""
UPDATE photos SET thumbnail_status = 'failed', thumbnail_error = $3,
                  updated_at = clock_timestamp()
 WHERE id = $1 AND workspace_id = $2 AND thumbnail_status IN ('pending', 'processing')
RETURNING {PHOTO_COLUMNS}"""


async def claim(pool: asyncpg.Pool, workspace_id: str, photo_id: uuid.UUID) -> PhotoRecord | None:
    """pending/processing -> processing, one more attempt; None if the photo is not due."""
    return await _transition(pool, _CLAIM, (photo_id, workspace_id), EventType.PROCESSING)


async def complete(
    pool: asyncpg.Pool,
    workspace_id: str,
    photo_id: uuid.UUID,
    thumbnails: Sequence[StoredThumbnail],
    placeholder: str = "",
) -> PhotoRecord | None:
    """processing -> complete with its thumbnails and placeholder; None if deleted or
    finished elsewhere."""
    args = (photo_id, workspace_id, [t.to_json() for t in thumbnails], placeholder)
    return await _transition(pool, _COMPLETE, args, EventType.READY)


async def fail(
    pool: asyncpg.Pool, workspace_id: str, photo_id: uuid.UUID, reason: str
) -> PhotoRecord | None:
    """pending/processing -> failed with `reason`; None if deleted or finished elsewhere."""
    args = (photo_id, workspace_id, reason)
    return await _transition(pool, _FAIL, args, EventType.FAILED, error=reason)


async def exists(pool: asyncpg.Pool, workspace_id: str, photo_id: uuid.UUID) -> bool:
    found = await pool.fetchval(
        "SELECT true FROM photos WHERE id = $1 AND workspace_id = $2", photo_id, workspace_id
    )
    return bool(found)


async def _transition(
    pool: asyncpg.Pool,
    sql: str,
    args: tuple[object, ...],
    event_type: EventType,
    error: str = "",
) -> PhotoRecord | None:
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(sql, *args)
        if row is None:
            return None
        photo = PhotoRecord.from_row(row)
        await record_event(conn, event_type, photo, error=error)
        return photo
