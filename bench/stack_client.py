"""A client of the real stack, as an app is: it uploads over gRPC (UploadPhoto, streamed in
64 KiB chunks) and learns that a photo is ready from the notifier's Subscribe stream, noting
the wall-clock time each photo.thumbnail_ready arrives."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from thumbwire.v1 import notifier_pb2, notifier_pb2_grpc, photos_pb2, photos_pb2_grpc

from services.core.events import EventType
from services.core.grpc_bearer import bearer_channel

CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Upload:
    photo_id: str
    started: float  # wall clock, time.time()
    returned: float


class StackClient:
    def __init__(self, upload_addr: str, notifier_addr: str, token: str, workspace: str) -> None:
        self._workspace = workspace
        self._upload_channel = bearer_channel(upload_addr, token)
        self._notifier_channel = bearer_channel(notifier_addr, token)
        self._photos = photos_pb2_grpc.PhotoServiceStub(self._upload_channel)
        # photo id -> when its ready event arrived; futures for the photos waited for.
        self.ready_at: dict[str, float] = {}
        self._waiting: dict[str, asyncio.Future[float]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def subscribe(self) -> None:
        """Returns once the notifier has registered the subscription: every later event
        reaches this client."""
        stub = notifier_pb2_grpc.NotifierServiceStub(self._notifier_channel)
        call = stub.Subscribe(notifier_pb2.SubscribeRequest(workspace_id=self._workspace))
        await call.initial_metadata()
        self._reader = asyncio.create_task(self._read(call))

    async def upload(self, data: bytes) -> Upload:
        started = time.time()
        photo = await self._photos.UploadPhoto(upload_requests(self._workspace, data))
        return Upload(photo.id, started, time.time())

    async def ready(self, photo_id: str, timeout_s: float = 120.0) -> float:
        """When the photo's ready event arrived (waits for it)."""
        if photo_id in self.ready_at:
            return self.ready_at[photo_id]
        future = self._waiting.setdefault(photo_id, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(asyncio.shield(future), timeout_s)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self._reader
        await self._upload_channel.close()
        await self._notifier_channel.close()

    async def _read(self, call: grpc.aio.UnaryStreamCall) -> None:
        async for event in call:
            if event.type != str(EventType.READY):
                continue
            at = time.time()
            self.ready_at[event.photo_id] = at
            future = self._waiting.pop(event.photo_id, None)
            if future is not None and not future.done():
                future.set_result(at)


async def upload_requests(
    workspace: str, data: bytes, item_id: str = "item-1", chunk_bytes: int = CHUNK_BYTES
) -> AsyncIterator[photos_pb2.UploadPhotoRequest]:
    """UploadPhoto's stream for `data`: its metadata (a fresh idempotency key), then chunks."""
    yield photos_pb2.UploadPhotoRequest(
        metadata=photos_pb2.UploadMetadata(
            workspace_id=workspace,
            item_id=item_id,
            filename="photo.jpg",
            idempotency_key=uuid.uuid4().hex,
        )
    )
    for start in range(0, len(data), chunk_bytes):
        yield photos_pb2.UploadPhotoRequest(chunk=data[start : start + chunk_bytes])
