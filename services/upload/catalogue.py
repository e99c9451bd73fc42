"""The photos table as the upload service changes it; each change commits with its event and,
where thumbnails are due, its job."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from services.core import requeue
from services.core.events import EventType, change_photo
from services.core.jobs import ThumbnailJob, job_message
from services.core.photos import PHOTO_COLUMNS, PhotoRecord, fetch_photo
from services.upload.paging import PageCursor

_ADD = f"""
INSERT INTO photos (id, workspace_id, item_id, filename, content_type, caption, size_bytes,
                    width, height, idempotency_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (workspace_id, idempotency_key) DO NOTHING
RETURNING {PHOTO_COLUMNS}"""

_DELETE = f"DELETE FROM photos WHERE id = $1 AND workspace_id = $2 RETURNING {PHOTO_COLUMNS}"


@dataclass(frozen=True)
class NewPhoto:
    id: uuid.UUID
    workspace_id: str
    item_id: str
    filename: str
    content_type: str
    caption: str
    size_bytes: int
    width: int
    height: int
    idempotency_key: str | None


class Catalogue:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def add(self, new: NewPhoto) -> PhotoRecord | None:
        """Records a pending photo, its photo.uploaded event and its job, in one statement
        (events.change_photo). None when the idempotency key was already used in the
        workspace."""
        job = job_message(ThumbnailJob(new.workspace_id, new.id))
        uploaded = await change_photo(
            self._pool,
            _ADD,
            (
                new.id,
                new.workspace_id,
                new.item_id,
                new.filename,
                new.content_type,
                new.caption,
                new.size_bytes,
                new.width,
                new.height,
                new.idempotency_key,
            ),
            EventType.UPLOADED,
            also=job,
        )
        return uploaded.photo if uploaded else None

    async def by_idempotency_key(self, workspace_id: str, key: str) -> PhotoRecord | None:
        row = await self._pool.fetchrow(
            f"SELECT {PHOTO_COLUMNS} FROM photos WHERE workspace_id = $1 AND idempotency_key = $2",
            workspace_id,
            key,
        )
        return PhotoRecord.from_row(row) if row else None

    async def get(self, workspace_id: str, photo_id: uuid.UUID) -> PhotoRecord | None:
        return await fetch_photo(self._pool, workspace_id, photo_id)

    async def page(
        self, workspace_id: str, item_id: str, size: int, after: PageCursor | None
    ) -> list[PhotoRecord]:
        """Up to `size` photos in upload order, after the cursor; item_id '' means all items."""
        rows = await self._pool.fetch(
            f"SELECT {PHOTO_COLUMNS} FROM photos"
            " WHERE workspace_id = $1 AND ($2 = '' OR item_id = $2)"
            "   AND ($3::timestamptz IS NULL OR (created_at, id) > ($3, $4))"
            " ORDER BY created_at, id LIMIT $5",
            workspace_id,
            item_id,
            after.created_at if after else None,
            after.photo_id if after else None,
            size,
        )
        return [PhotoRecord.from_row(r) for r in rows]

    async def delete(self, workspace_id: str, photo_id: uuid.UUID) -> PhotoRecord | None:
        """Deletes the row and records photo.deleted; None when there was no such photo."""
        deleted = await change_photo(
            self._pool, _DELETE, (photo_id, workspace_id), EventType.DELETED
        )
        return deleted.photo if deleted else None

    async def requeue_failed(self, workspace_id: str, photo_id: uuid.UUID) -> PhotoRecord | None:
        """A failed photo back to pending with its attempts reset, and a new job; None when
        the photo is not failed (or does not exist)."""
        return await requeue.requeue_failed(self._pool, workspace_id, photo_id)
