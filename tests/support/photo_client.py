"""A patient gRPC client, as a real app would be during an outage: it retries an upload that
met UNAVAILABLE with the same idempotency key, and polls photos until they are finished."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from thumbwire.v1 import photos_pb2, photos_pb2_grpc

from tests.support.auth import bearer_channel
from tests.support.uploads import upload_requests

FINISHED = {photos_pb2.THUMBNAIL_STATUS_COMPLETE, photos_pb2.THUMBNAIL_STATUS_FAILED}


class PhotoClient:
    def __init__(self, address: str, token: str) -> None:
        self._channel = bearer_channel(address, token)
        self.stub = photos_pb2_grpc.PhotoServiceStub(self._channel)
        self.unavailable = 0  # how many calls met UNAVAILABLE and were tried again

    async def close(self) -> None:
        await self._channel.close()

    async def upload(
        self, workspace_id: str, data: bytes, timeout_s: float = 60.0
    ) -> photos_pb2.Photo:
        metadata = photos_pb2.UploadMetadata(
            workspace_id=workspace_id,
            item_id="item-1",
            filename="photo.jpg",
            idempotency_key=uuid.uuid4().hex,
        )
        return await self._patiently(
            lambda: self.stub.UploadPhoto(upload_requests(data, metadata)), timeout_s
        )

    async def get(self, photo: photos_pb2.Photo, timeout_s: float = 60.0) -> photos_pb2.Photo:
        request = photos_pb2.GetPhotoRequest(workspace_id=photo.workspace_id, photo_id=photo.id)
        return await self._patiently(lambda: self.stub.GetPhoto(request), timeout_s)

    async def wait_finished(
        self, photos: list[photos_pb2.Photo], timeout_s: float = 90.0
    ) -> list[photos_pb2.Photo]:
        """Each photo once it is complete or failed."""
        async with asyncio.timeout(timeout_s):
            return list(await asyncio.gather(*(self._finished(p) for p in photos)))

    async def _finished(self, photo: photos_pb2.Photo) -> photos_pb2.Photo:
        while True:  # polling is the point: it is what a client without a stream does
            current = await self.get(photo)
            if current.thumbnail_status in FINISHED:
                return current
            await asyncio.sleep(0.2)

    async def _patiently(self, call, timeout_s: float):  # type: ignore[no-untyped-def]
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    return await call()
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    self.unavailable += 1
                    await asyncio.sleep(0.3)
