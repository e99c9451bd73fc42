"""Records to their public forms: protobuf messages for gRPC, JSON for the gateway (SSE and REST);
and back from a Photo message, for the gateway's REST facade, which gets photos over gRPC."""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from thumbwire.v1 import notifier_pb2, photos_pb2

from services.core.events import EventRecord
from services.core.photos import PhotoRecord, StoredThumbnail, ThumbnailSize, ThumbnailStatus

_STATUS = {
    "pending": photos_pb2.THUMBNAIL_STATUS_PENDING,
    "processing": photos_pb2.THUMBNAIL_STATUS_PROCESSING,
    "complete": photos_pb2.THUMBNAIL_STATUS_COMPLETE,
    "failed": photos_pb2.THUMBNAIL_STATUS_FAILED,
}
_SIZE = {
    ThumbnailSize.SMALL: photos_pb2.THUMBNAIL_SIZE_SMALL,
    ThumbnailSize.MEDIUM: photos_pb2.THUMBNAIL_SIZE_MEDIUM,
    ThumbnailSize.LARGE: photos_pb2.THUMBNAIL_SIZE_LARGE,
}
# The Photo fields that the record and the message hold alike.
_SAME_IN_BOTH = (
    "workspace_id",
    "item_id",
    "filename",
    "content_type",
    "caption",
    "size_bytes",
    "width",
    "height",
    "thumbnail_attempts",
    "thumbnail_error",
    "placeholder",
)
_STATUS_OF = {number: ThumbnailStatus(name) for name, number in _STATUS.items()}
_SIZE_OF = {number: size for size, number in _SIZE.items()}


def thumbnail_url(base_url: str, workspace_id: str, photo_id: uuid.UUID, size: str) -> str:
    """The gateway route that serves a thumbnail; the same for every replica."""
    return f"{base_url}/v1/workspaces/{workspace_id}/photos/{photo_id}/thumbnails/{size}"


def photo_to_proto(photo: PhotoRecord, base_url: str) -> photos_pb2.Photo:
    message = photos_pb2.Photo(
        id=str(photo.id),
        thumbnail_status=_STATUS[photo.thumbnail_status],
        thumbnails=[_thumbnail_to_proto(photo, t, base_url) for t in _visible_thumbnails(photo)],
        **{name: getattr(photo, name) for name in _SAME_IN_BOTH},
    )
    message.created_at.FromDatetime(photo.created_at)
    message.updated_at.FromDatetime(photo.updated_at)
    return message


def photo_from_proto(message: photos_pb2.Photo) -> PhotoRecord:
    """The record a Photo message was made from (photo_to_proto's inverse)."""
    return PhotoRecord(
        id=uuid.UUID(message.id),
        thumbnail_status=_STATUS_OF[message.thumbnail_status],
        created_at=message.created_at.ToDatetime(tzinfo=UTC),
        updated_at=message.updated_at.ToDatetime(tzinfo=UTC),
        thumbnails=tuple(_thumbnail_from_proto(t) for t in message.thumbnails),
        **{name: getattr(message, name) for name in _SAME_IN_BOTH},
    )


def event_to_proto(event: EventRecord, base_url: str) -> notifier_pb2.PhotoEvent:
    occurred_at = Timestamp()
    occurred_at.FromDatetime(event.occurred_at)
    message = notifier_pb2.PhotoEvent(
        id=event.id,
        type=str(event.type),
        workspace_id=event.workspace_id,
        photo_id=str(event.photo_id) if event.photo_id else "",
        item_id=event.item_id,
        error=event.error,
        occurred_at=occurred_at,
        attempt=event.attempt,
        retry_delay_ms=event.retry_delay_ms,
    )
    if event.photo is not None:
        message.photo.CopyFrom(photo_to_proto(event.photo, base_url))
    return message


def photo_to_json(photo: PhotoRecord, base_url: str) -> dict[str, Any]:
    """The photo as REST and SSE show it: statuses in lower case, thumbnails with URLs."""
    data = photo.to_json()
    data["thumbnails"] = [
        {**t.to_json(), "url": thumbnail_url(base_url, photo.workspace_id, photo.id, t.size)}
        for t in _visible_thumbnails(photo)
    ]
    return data


def event_to_json(event: EventRecord, base_url: str) -> dict[str, Any]:
    """The SSE `data:` payload: the event, plus the photo's status and thumbnails at top level."""
    photo = photo_to_json(event.photo, base_url) if event.photo else None
    return {
        "id": event.id,
        "type": str(event.type),
        "workspace_id": event.workspace_id,
        "photo_id": str(event.photo_id) if event.photo_id else "",
        "item_id": event.item_id,
        "thumbnail_status": photo["thumbnail_status"] if photo else "",
        "thumbnails": photo["thumbnails"] if photo else [],
        "placeholder": photo["placeholder"] if photo else "",
        "error": event.error,
        "attempt": event.attempt,
        "retry_delay_ms": event.retry_delay_ms,
        "occurred_at": event.occurred_at.isoformat(),
        "photo": photo,
    }


def _visible_thumbnails(photo: PhotoRecord) -> tuple[StoredThumbnail, ...]:
    # CONTRACT.md: thumbnails are empty until the photo is complete.
    return photo.thumbnails if photo.thumbnail_status == "complete" else ()


def _thumbnail_to_proto(
    photo: PhotoRecord, thumb: StoredThumbnail, base_url: str
) -> photos_pb2.Thumbnail:
    return photos_pb2.Thumbnail(
        size=_SIZE[thumb.size],
        width=thumb.width,
        height=thumb.height,
        content_type=thumb.content_type,
        size_bytes=thumb.size_bytes,
        url=thumbnail_url(base_url, photo.workspace_id, photo.id, thumb.size),
    )


def _thumbnail_from_proto(message: photos_pb2.Thumbnail) -> StoredThumbnail:
    return StoredThumbnail(
        size=_SIZE_OF[message.size],
        width=message.width,
        height=message.height,
        size_bytes=message.size_bytes,
        content_type=message.content_type,
    )
