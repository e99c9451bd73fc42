"""The photo as stored: its record, its thumbnail sizes and the object keys derived from ids."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Annotations only: the image worker processes import this module, and the database
    # driver would add about 11 MB to each of them.
    import asyncpg


class ThumbnailStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETE = "complete"
    FAILED = "failed"


class ThumbnailSize(StrEnum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"

    @property
    def longest_side(self) -> int:
        return _LONGEST_SIDE[self]


_LONGEST_SIDE = {ThumbnailSize.SMALL: 150, ThumbnailSize.MEDIUM: 400, ThumbnailSize.LARGE: 800}

THUMBNAIL_CONTENT_TYPE = "image/webp"


@dataclass(frozen=True)
class StoredThumbnail:
    size: ThumbnailSize
    width: int
    height: int
    size_bytes: int
    content_type: str = THUMBNAIL_CONTENT_TYPE

    def to_json(self) -> dict[str, Any]:
        return {
            "size": str(self.size),
            "width": self.width,
            "height": self.height,
            "size_bytes": self.size_bytes,
            "content_type": self.content_type,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoredThumbnail:
        return cls(
            size=ThumbnailSize(data["size"]),
            width=int(data["width"]),
            height=int(data["height"]),
            size_bytes=int(data["size_bytes"]),
            content_type=data.get("content_type", THUMBNAIL_CONTENT_TYPE),
        )


@dataclass(frozen=True)
class PhotoRecord:
    id: uuid.UUID
    workspace_id: str
    item_id: str
    filename: str
    content_type: str
    caption: str
    size_bytes: int
    width: int
    height: int
    thumbnail_status: ThumbnailStatus
    thumbnail_attempts: int
    thumbnail_error: str
    created_at: datetime
    updated_at: datetime
    thumbnails: tuple[StoredThumbnail, ...] = field(default=())
    placeholder: str = ""

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> PhotoRecord:
        return cls(
            id=row["id"],
            workspace_id=row["workspace_id"],
            item_id=row["item_id"],
            filename=row["filename"],
            content_type=row["content_type"],
            caption=row["caption"],
            size_bytes=row["size_bytes"],
            width=row["width"],
            height=row["height"],
            thumbnail_status=ThumbnailStatus(row["thumbnail_status"]),
            thumbnail_attempts=row["thumbnail_attempts"],
            thumbnail_error=row["thumbnail_error"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            thumbnails=tuple(StoredThumbnail.from_json(t) for t in row["thumbnails"]),
            placeholder=row["placeholder"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "workspace_id": self.workspace_id,
            "item_id": self.item_id,
            "filename": self.filename,
            "content_type": self.content_type,
            "caption": self.caption,
            "size_bytes": self.size_bytes,
            "width": self.width,
            "height": self.height,
            "thumbnail_status": str(self.thumbnail_status),
            "thumbnail_attempts": self.thumbnail_attempts,
            "thumbnail_error": self.thumbnail_error,
            "thumbnails": [t.to_json() for t in self.thumbnails],
            "placeholder": self.placeholder,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PhotoRecord:
        return cls(
            id=uuid.UUID(data["id"]),
            workspace_id=data["workspace_id"],
            item_id=data["item_id"],
            filename=data["filename"],
            content_type=data["content_type"],
            caption=data["caption"],
            size_bytes=int(data["size_bytes"]),
            width=int(data["width"]),
            height=int(data["height"]),
            thumbnail_status=ThumbnailStatus(data["thumbnail_status"]),
            thumbnail_attempts=int(data["thumbnail_attempts"]),
            thumbnail_error=data["thumbnail_error"],
            thumbnails=tuple(StoredThumbnail.from_json(t) for t in data["thumbnails"]),
            placeholder=data.get("placeholder", ""),
            created_at=datetime.fromisoformat(data["created_at"]),
            updated_at=datetime.fromisoformat(data["updated_at"]),
        )


def original_key(workspace_id: str, photo_id: uuid.UUID) -> str:
    """The original's object key: ids only, never the client's file name."""
    return f"workspaces/{workspace_id}/photos/{photo_id}/original"


def thumbnail_key(workspace_id: str, photo_id: uuid.UUID, size: ThumbnailSize) -> str:
    return f"workspaces/{workspace_id}/photos/{photo_id}/{size}.webp"


def photo_keys(workspace_id: str, photo_id: uuid.UUID) -> list[str]:
    """Every object a photo can own."""
    thumbs = [thumbnail_key(workspace_id, photo_id, size) for size in ThumbnailSize]
    return [original_key(workspace_id, photo_id), *thumbs]


PHOTO_COLUMNS = (
    "id, workspace_id, item_id, filename, content_type, caption, size_bytes, width, height,"
    " thumbnail_status, thumbnail_attempts, thumbnail_error, thumbnails, placeholder,"
    " created_at, updated_at"
)


async def fetch_photo(
    conn: asyncpg.Connection | asyncpg.Pool, workspace_id: str, photo_id: uuid.UUID
) -> PhotoRecord | None:
    row = await conn.fetchrow(
        f"SELECT {PHOTO_COLUMNS} FROM photos WHERE id = $1 AND workspace_id = $2",
        photo_id,
        workspace_id,
    )
    return PhotoRecord.from_row(row) if row else None
