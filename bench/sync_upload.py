"""`python -m bench.sync_upload`: the synchronous baseline of the upload benchmark, a
PhotoService whose UploadPhoto makes the thumbnails before it returns.

It is built from the upload service's and the thumbnailer's own parts, so that it does all the
work of both, in one call: the upload service's receiving, inspecting, storing of the original
and recording (photo row, event and job in one transaction, the outbox relay publishing them);
then the thumbnailer's ThumbnailProcessor on that photo (claim, render in the same pool of
worker processes, one per core, the three WebP objects stored, status complete with its event).
It answers with the photo as complete. What it saves against the asynchronous way plus a
thumbnailer: reading the original back from S3 (the processor gets the received bytes) and the
job's trip through RabbitMQ. No thumbnailer runs beside it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from thumbwire.v1 import photos_pb2

from services.core.auth import TokenAuthority
from services.core.config import Settings
from services.core.errors import Unavailable
from services.core.jobs import ThumbnailJob
from services.core.lifecycle import run_service
from services.core.photos import PhotoRecord, original_key
from services.core.storage import ObjectStore
from services.thumbnailer.processing import Outcome, ThumbnailProcessor
from services.thumbnailer.rendering import ImageLimits, RenderPool
from services.upload.app import photo_grpc_server, start_recording
from services.upload.catalogue import Catalogue
from services.upload.grpc_service import PhotoServicer
from services.upload.metrics import UploadMetrics
from services.upload.photo_service import PhotoService, UploadLimits

Requests = AsyncIterator[photos_pb2.UploadPhotoRequest]


class OriginalAtHand:
    """The store as the processor sees it, except that the original just received is read
    from memory: a synchronous upload has its bytes and would not fetch them again."""

    def __init__(self, store: ObjectStore, key: str, original: bytes) -> None:
        self._store = store
        self._key = key
        self._original = original

    async def get(self, key: str) -> bytes:
        return self._original if key == self._key else await self._store.get(key)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._store.put(key, data, content_type)

    async def delete_many(self, keys: list[str]) -> None:
        await self._store.delete_many(keys)


class SyncPhotoService(PhotoService):
    def __init__(
        self, pool: asyncpg.Pool, store: ObjectStore, limits: UploadLimits, renders: RenderPool
    ) -> None:
        super().__init__(Catalogue(pool), store, limits)
        self._object_store = store
        self._db_pool = pool
        self._renders = renders

    async def upload(self, requests: Requests) -> PhotoRecord:
        """The asynchronous upload, then the thumbnailer's processing of its job."""
        chunks: list[bytes] = []
        photo = await super().upload(_keeping(requests, chunks))
        store = OriginalAtHand(
            self._object_store, original_key(photo.workspace_id, photo.id), b"".join(chunks)
        )
        processor = ThumbnailProcessor(self._db_pool, store, self._renders)  # type: ignore[arg-type]
        outcome = await processor.process(ThumbnailJob(photo.workspace_id, photo.id))
        if outcome is not Outcome.COMPLETED:
            raise Unavailable(f"thumbnails not made: {outcome}")
        return await self.get(photo.workspace_id, str(photo.id))


async def _keeping(requests: Requests, chunks: list[bytes]) -> Requests:
    async for request in requests:
        if request.WhichOneof("payload") == "chunk":
            chunks.append(request.chunk)
        yield request


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """As services.upload.app.serve, less its readiness probe and /metrics server."""
    tokens = TokenAuthority.from_settings(settings)
    async with contextlib.AsyncExitStack() as resources:
        # The upload service's name: the other services' relays leave its outbox rows to the
        # relays of that name (services.core.outbox.SELF_RELAYING), as they leave the upload
        # service's. As "bench-sync", every relay of the stack woke and raced for each of its
        # events: some 11 ms of CPU per synchronous upload that no asynchronous one pays.
        pool, _connection = await start_recording(settings, resources, "thumbwire-upload")
        renders = RenderPool(settings.concurrency, ImageLimits.from_settings(settings))
        resources.push_async_callback(renders.close)
        limits = UploadLimits(settings.max_upload_bytes, settings.max_pixels)
        store = ObjectStore.from_settings(settings)
        resources.push_async_callback(store.close)
        service = SyncPhotoService(pool, store, limits, renders)
        servicer = PhotoServicer(service, settings.public_base_url, UploadMetrics())
        server = photo_grpc_server(settings, tokens, servicer)
        await server.start()
        resources.push_async_callback(server.stop, 5.0)
        await stop.wait()


if __name__ == "__main__":
    run_service("bench-sync-upload", serve)
