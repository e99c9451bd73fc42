"""Photos put in place as the upload service does: original in S3, then one statement with
the pending row, its photo.uploaded event and its job in the outbox (events.change_photo)."""

from __future__ import annotations

import uuid

import asyncpg

from services.core.events import EventType, change_photo
from services.core.imageinfo import ImageRejected, inspect_image
from services.core.jobs import ThumbnailJob, enqueue_job, job_message
from services.core.photos import PHOTO_COLUMNS, PhotoRecord, original_key
from services.core.storage import ObjectStore

_INSERT = f"""
INSERT INTO photos (id, workspace_id, item_id, filename, content_type, size_bytes, width, height)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING {PHOTO_COLUMNS}"""


async def seed_photo(
    pool: asyncpg.Pool,
    store: ObjectStore,
    data: bytes,
    workspace_id: str | None = None,
    *,
    enqueue: bool = True,
) -> PhotoRecord:
    """A pending photo of `data`; its job goes to the outbox unless `enqueue` is False.

    Bytes the upload service would refuse are stored too (as image/jpeg, 0x0): they stand for
    an original that went bad after the upload."""
    workspace_id = workspace_id or f"ws-{uuid.uuid4().hex[:8]}"
    photo_id = uuid.uuid4()
    try:
        info = inspect_image(data, 100_000_000)
        content_type, width, height = info.content_type, info.width, info.height
    except ImageRejected:
        content_type, width, height = "image/jpeg", 0, 0
    await store.put(original_key(workspace_id, photo_id), data, content_type)
    args = (photo_id, workspace_id, "item-1", "photo", content_type, len(data), width, height)
    job = job_message(ThumbnailJob(workspace_id, photo_id)) if enqueue else None
    uploaded = await change_photo(pool, _INSERT, args, EventType.UPLOADED, also=job)
    assert uploaded is not None and uploaded.photo is not None
    return uploaded.photo


async def enqueue(pool: asyncpg.Pool, photo: PhotoRecord) -> None:
    """One more job for `photo`, through the outbox, as a retry or a redelivery would."""
    async with pool.acquire() as conn, conn.transaction():
        await enqueue_job(conn, ThumbnailJob(photo.workspace_id, photo.id))


async def delete_photo(pool: asyncpg.Pool, photo: PhotoRecord) -> None:
    """Deletes the row with its photo.deleted event, as DeletePhoto does (objects stay)."""
    delete = f"DELETE FROM photos WHERE id = $1 RETURNING {PHOTO_COLUMNS}"
    await change_photo(pool, delete, (photo.id,), EventType.DELETED)


async def set_thumbnail_state(
    pool: asyncpg.Pool, photo_id: uuid.UUID, status: str, attempts: int, error: str = ""
) -> None:
    """Puts a photo where a test needs it (say, failed after 5 attempts), without its events."""
    await pool.execute(
        "UPDATE photos SET thumbnail_status = $2, thumbnail_attempts = $3, thumbnail_error = $4"
        " WHERE id = $1",
        photo_id,
        status,
        attempts,
        error,
    )
