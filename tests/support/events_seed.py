"""Photos and events written the way the services write them: one statement for the state
change and its event, which queues the event in the outbox for the relay
(events.change_photo)."""

from __future__ import annotations

import io
import uuid

import asyncpg
from PIL import Image

from services.core.events import EventRecord, EventType, change_photo
from services.core.photos import (
    PHOTO_COLUMNS,
    PhotoRecord,
    StoredThumbnail,
    ThumbnailSize,
    thumbnail_key,
)
from services.core.storage import ObjectStore


async def add_photo(
    pool: asyncpg.Pool, workspace_id: str, item_id: str = "item-1", caption: str = ""
) -> EventRecord:
    """A new pending photo and its photo.uploaded event (a long caption makes a large one)."""
    uploaded = await change_photo(
        pool,
        "INSERT INTO photos (id, workspace_id, item_id, filename, content_type, caption,"
        " size_bytes, width, height) VALUES ($1, $2, $3, 'p.jpg', 'image/jpeg', $4, 1234,"
        f" 300, 200) RETURNING {PHOTO_COLUMNS}",
        (uuid.uuid4(), workspace_id, item_id, caption),
        EventType.UPLOADED,
    )
    assert uploaded is not None
    return uploaded


async def mark_complete(pool: asyncpg.Pool, photo: PhotoRecord) -> EventRecord:
    """Sets the photo complete with three thumbnails and records photo.thumbnail_ready."""
    thumbnails = [_thumbnail(size, photo.width, photo.height).to_json() for size in ThumbnailSize]
    ready = await change_photo(
        pool,
        "UPDATE photos SET thumbnail_status = 'complete', thumbnails = $3,"
        " thumbnail_attempts = 1, updated_at = clock_timestamp()"
        f" WHERE id = $1 AND workspace_id = $2 RETURNING {PHOTO_COLUMNS}",
        (photo.id, photo.workspace_id, thumbnails),
        EventType.READY,
    )
    assert ready is not None
    return ready


def webp_bytes(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 4), color).save(buffer, format="WEBP")
    return buffer.getvalue()


async def put_thumbnails(store: ObjectStore, workspace_id: str, photo_id: uuid.UUID) -> bytes:
    """The same small WebP under each size's key, as the thumbnailer would store them."""
    data = webp_bytes("red")
    for size in ThumbnailSize:
        await store.put(thumbnail_key(workspace_id, photo_id, size), data, "image/webp")
    return data


async def complete_photo(pool: asyncpg.Pool, store: ObjectStore, workspace_id: str) -> PhotoRecord:
    """A complete photo with its thumbnails in the store; its events are in the log."""
    photo = (await add_photo(pool, workspace_id)).photo
    assert photo is not None
    await put_thumbnails(store, workspace_id, photo.id)
    ready = await mark_complete(pool, photo)
    assert ready.photo is not None
    return ready.photo


async def last_event_id(pool: asyncpg.Pool, workspace_id: str) -> int:
    return await pool.fetchval(
        "SELECT coalesce(max(id), 0) FROM events WHERE workspace_id = $1", workspace_id
    )


async def event_ids_after(pool: asyncpg.Pool, workspace_id: str, after_id: int) -> list[int]:
    rows = await pool.fetch(
        "SELECT id FROM events WHERE workspace_id = $1 AND id > $2 ORDER BY id",
        workspace_id,
        after_id,
    )
    return [r["id"] for r in rows]


def _thumbnail(size: ThumbnailSize, width: int, height: int) -> StoredThumbnail:
    scale = min(1.0, size.longest_side / max(width, height))
    return StoredThumbnail(size, round(width * scale), round(height * scale), size_bytes=42)
