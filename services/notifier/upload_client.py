"""The gateway's client of the upload service (PhotoService over gRPC), for the REST facade.

Each call carries the browser's own bearer token, so the upload service decides exactly what it
decides for any other client; the gateway adds no authority of its own. A status a client can
act on comes back as the ClientError of that status (services.core.errors), so that REST
reports it with the matching HTTP status; an upload service that cannot be reached is
Unavailable, and the gateway goes on serving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from thumbwire.v1 import photos_pb2, photos_pb2_grpc

from services.core.convert import photo_from_proto
from services.core.errors import ClientError, Unavailable, error_for_status
from services.core.grpc_bearer import bearer_metadata
from services.core.photos import PhotoRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

# Unary calls answer in milliseconds; past this the upload service counts as unavailable.
CALL_TIMEOUT_S = 10.0
UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# gRPC waits up to 120 s between reconnection attempts by default: a restarted upload service
# would get no REST traffic for that long. Seconds are enough for a service on the same network.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5000),
]


class BadGateway(Exception):
    """The upload service answered with a status no client can act on (INTERNAL, UNKNOWN)."""


@dataclass(frozen=True)
class PhotoPage:
    photos: list[PhotoRecord]
    next_page_token: str


class UploadClient:
    """PhotoService calls on behalf of one HTTP request's token each."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = photos_pb2_grpc.PhotoServiceStub(channel)

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, address: str) -> AsyncIterator[UploadClient]:
        """A client of the upload service at `address`; the channel connects lazily, so the
        gateway starts whether or not the upload service is up."""
        async with grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
            yield cls(channel)

    async def get(self, token: str, workspace_id: str, photo_id: str) -> PhotoRecord:
        request = photos_pb2.GetPhotoRequest(workspace_id=workspace_id, photo_id=photo_id)
        return photo_from_proto(await self._unary(self._stub.GetPhoto, request, token))

    async def list(
        self, token: str, workspace_id: str, item_id: str, page_size: int, page_token: str
    ) -> PhotoPage:
        request = photos_pb2.ListPhotosRequest(
            workspace_id=workspace_id, item_id=item_id, page_size=page_size, page_token=page_token
        )
        reply = await self._unary(self._stub.ListPhotos, request, token)
        return PhotoPage([photo_from_proto(p) for p in reply.photos], reply.next_page_token)

    async def retry(self, token: str, workspace_id: str, photo_id: str) -> PhotoRecord:
        request = photos_pb2.RetryThumbnailsRequest(workspace_id=workspace_id, photo_id=photo_id)
        return photo_from_proto(await self._unary(self._stub.RetryThumbnails, request, token))

    async def delete(self, token: str, workspace_id: str, photo_id: str) -> None:
        request = photos_pb2.DeletePhotoRequest(workspace_id=workspace_id, photo_id=photo_id)
        await self._unary(self._stub.DeletePhoto, request, token)

    async def upload(
        self, token: str, metadata: photos_pb2.UploadMetadata, chunks: AsyncIterator[bytes]
    ) -> PhotoRecord:
        """Streams the metadata, then each chunk as it comes: `write` waits for the upload
        service to take a message (flow control), so one chunk at a time is held here."""
        call = self._stub.UploadPhoto(metadata=bearer_metadata(token))
        try:
            # An upload service that ends the call early (an error) fails the next write; the
            # call's status, awaited below, says why.
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await call.write(photos_pb2.UploadPhotoRequest(metadata=metadata))
                async for chunk in chunks:
                    await call.write(photos_pb2.UploadPhotoRequest(chunk=chunk))
                await call.done_writing()
        except BaseException:
            # The browser's body failed (too large, malformed, gone): end the call unfinished,
            # so that the upload service records nothing.
            call.cancel()
            raise
        return photo_from_proto(await self._outcome(call))

    async def _outcome(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from None

    async def _unary(self, method: Callable[..., Awaitable[T]], request: object, token: str) -> T:
        call = method(request, metadata=bearer_metadata(token), timeout=CALL_TIMEOUT_S)
        return await self._outcome(call)


def translate(exc: grpc.aio.AioRpcError) -> ClientError | BadGateway:
    """The gateway's error for a failed call to the upload service."""
    code, details = exc.code(), exc.details() or ""
    if code in UNREACHABLE:
        log.warning("upload service call failed: %s %s", code.name, details)
        return Unavailable("the upload service is unavailable; try again shortly")
    error = error_for_status(code, details)
    if error is not None:
        return error
    log.error("upload service call failed: %s %s", code.name, details)
    return BadGateway(f"the upload service failed ({code.name.lower()})")
