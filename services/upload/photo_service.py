"""PhotoService's logic, free of gRPC: each method takes plain values and raises ClientError."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

from thumbwire.v1 import photos_pb2

from services.core import tracing, validation
from services.core.database import DATABASE_ERRORS
from services.core.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from services.core.imageinfo import ImageInfo, ImageRejected, inspect_image
from services.core.photos import PhotoRecord, original_key, photo_keys
from services.core.storage import ObjectStore, StorageError
from services.upload.catalogue import Catalogue, NewPhoto
from services.upload.paging import PageCursor, page_size
from services.upload.receiving import MemoryBudget, ReceivedFile, read_chunks, read_metadata

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class UploadLimits:
    max_upload_bytes: int
    max_pixels: int


@dataclass(frozen=True)
class Page:
    photos: list[PhotoRecord]
    next_token: str


class PhotoService:
    def __init__(self, catalogue: Catalogue, store: ObjectStore, limits: UploadLimits) -> None:
        self._catalogue = catalogue
        self._store = store
        self._limits = limits
        self._in_memory = MemoryBudget()

    async def upload(self, requests: AsyncIterator[photos_pb2.UploadPhotoRequest]) -> PhotoRecord:
        """Stores the original, then records the photo, its event and its job; returns at once."""
        metadata = await read_metadata(requests)
        workspace_id = validation.workspace_id(metadata.workspace_id)
        validation.item_id(metadata.item_id)
        validation.caption(metadata.caption)
        key = metadata.idempotency_key or None
        if key and (earlier := await self._by_idempotency_key(workspace_id, key)):
            return earlier
        received = await read_chunks(requests, self._limits.max_upload_bytes, self._in_memory)
        try:
            info = await asyncio.to_thread(self._inspect, received)
            new = _new_photo(metadata, received.size, info)
            tracing.bind_photo(new.id)
            await self._store_original(new, received)
        finally:
            received.close()
        photo = await self._record(new)
        log.info("photo %s uploaded: %d bytes, %s", photo.id, photo.size_bytes, photo.content_type)
        return photo

    async def get(self, workspace_id: str, photo_id: str) -> PhotoRecord:
        workspace, pid = validation.workspace_id(workspace_id), validation.photo_id(photo_id)
        photo = await self._db(self._catalogue.get(workspace, pid))
        if photo is None:
            raise NotFound(f"no photo {pid} in workspace {workspace}")
        return photo

    async def list(self, workspace_id: str, item_id: str, size: int, token: str) -> Page:
        workspace = validation.workspace_id(workspace_id)
        if item_id:
            validation.item_id(item_id)
        limit = page_size(size)
        cursor = PageCursor.decode(token, item_id) if token else None
        photos = await self._db(self._catalogue.page(workspace, item_id, limit + 1, cursor))
        if len(photos) <= limit:
            return Page(photos, "")
        last = photos[limit - 1]
        return Page(photos[:limit], PageCursor(last.created_at, last.id, item_id).encode())

    async def delete(self, workspace_id: str, photo_id: str) -> None:
        workspace, pid = validation.workspace_id(workspace_id), validation.photo_id(photo_id)
        photo = await self._db(self._catalogue.delete(workspace, pid))
        if photo is None:
            raise NotFound(f"no photo {pid} in workspace {workspace}")
        try:
            await self._store.delete_many(photo_keys(workspace, pid))
        except StorageError as exc:
            # The row is gone, so nothing will ever serve these objects again.
            log.warning("photo %s deleted; its objects remain in storage: %s", pid, exc)

    async def retry(self, workspace_id: str, photo_id: str) -> PhotoRecord:
        workspace, pid = validation.workspace_id(workspace_id), validation.photo_id(photo_id)
        photo = await self._db(self._catalogue.requeue_failed(workspace, pid))
        if photo is not None:
            return photo
        current = await self.get(workspace, photo_id)
        raise FailedPrecondition(
            f"photo {pid} is {current.thumbnail_status}; only a failed photo can be retried"
        )

    def _inspect(self, received: ReceivedFile) -> ImageInfo:
        try:
            return inspect_image(received.reader(), self._limits.max_pixels)
        except ImageRejected as exc:
            raise InvalidArgument(str(exc)) from exc

    async def _store_original(self, new: NewPhoto, received: ReceivedFile) -> None:
        key, content_type = original_key(new.workspace_id, new.id), new.content_type
        try:
            if received.data is not None:
                await self._store.put(key, received.data, content_type, received.sha256)
            else:
                await self._store.put_stream(key, received.reader(), received.size, content_type)
        except StorageError as exc:
            raise Unavailable(f"object storage is unavailable: {exc}") from exc

    async def _record(self, new: NewPhoto) -> PhotoRecord:
        try:
            photo = await self._catalogue.add(new)
        except DATABASE_ERRORS as exc:
            return await self._after_failed_record(new, exc)
        if photo is not None:
            return photo
        # Another upload with the same idempotency key won the race: answer with its photo.
        await self._forget_original(new)
        assert new.idempotency_key is not None
        earlier = await self._by_idempotency_key(new.workspace_id, new.idempotency_key)
        if earlier is None:
            raise Unavailable("the upload raced with another; try again")
        return earlier

    async def _after_failed_record(self, new: NewPhoto, error: BaseException) -> PhotoRecord:
        """A connection lost during the commit leaves its outcome unknown: the row may exist.
        Its original must then stay, or the photo would fail for a missing original; so the
        original goes only once the database says the row is not there."""
        try:
            recorded = await self._catalogue.get(new.workspace_id, new.id)
        except DATABASE_ERRORS:
            log.warning("photo %s: commit outcome unknown; its original is kept", new.id)
            raise Unavailable(
                "the database is unavailable; retry with the same idempotency key"
            ) from error
        if recorded is not None:
            return recorded  # the commit went through after all
        await self._forget_original(new)
        raise Unavailable("the database is unavailable; nothing was stored") from error

    async def _forget_original(self, new: NewPhoto) -> None:
        try:
            await self._store.delete_many([original_key(new.workspace_id, new.id)])
        except StorageError as exc:
            log.warning("could not remove the original of unrecorded photo %s: %s", new.id, exc)

    async def _by_idempotency_key(self, workspace_id: str, key: str) -> PhotoRecord | None:
        return await self._db(self._catalogue.by_idempotency_key(workspace_id, key))

    @staticmethod
    async def _db(query: Awaitable[T]) -> T:
        try:
            return await query
        except DATABASE_ERRORS as exc:
            raise Unavailable("the database is unavailable") from exc


def _new_photo(metadata: photos_pb2.UploadMetadata, size: int, info: ImageInfo) -> NewPhoto:
    return NewPhoto(
        id=uuid.uuid4(),
        workspace_id=metadata.workspace_id,
        item_id=metadata.item_id,
        filename=validation.filename(metadata.filename),
        content_type=info.content_type,
        caption=metadata.caption,
        size_bytes=size,
        width=info.width,
        height=info.height,
        idempotency_key=metadata.idempotency_key or None,
    )
