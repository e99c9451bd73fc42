"""PhotoService over gRPC: a thin layer that converts messages and reports ClientErrors as
status codes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from thumbwire.v1 import photos_pb2, photos_pb2_grpc

from services.core import tracing
from services.core.convert import photo_to_proto
from services.core.errors import grpc_errors
from services.upload.metrics import UploadMetrics
from services.upload.photo_service import PhotoService


class PhotoServicer(photos_pb2_grpc.PhotoServiceServicer):
    def __init__(self, service: PhotoService, public_base_url: str, metrics: UploadMetrics) -> None:
        self._service = service
        self._base_url = public_base_url
        self._metrics = metrics

    @grpc_errors
    async def UploadPhoto(  # noqa: N802 - names come from the generated stub
        self,
        request_iterator: AsyncIterator[photos_pb2.UploadPhotoRequest],
        context: grpc.aio.ServicerContext,
    ) -> photos_pb2.Photo:
        with tracing.traced(trace_from(context)):
            photo = await self._metrics.observe(self._service.upload, request_iterator)
        return photo_to_proto(photo, self._base_url)

    @grpc_errors
    async def GetPhoto(  # noqa: N802
        self, request: photos_pb2.GetPhotoRequest, context: grpc.aio.ServicerContext
    ) -> photos_pb2.Photo:
        photo = await self._service.get(request.workspace_id, request.photo_id)
        return photo_to_proto(photo, self._base_url)

    @grpc_errors
    async def ListPhotos(  # noqa: N802
        self, request: photos_pb2.ListPhotosRequest, context: grpc.aio.ServicerContext
    ) -> photos_pb2.ListPhotosResponse:
        page = await self._service.list(
            request.workspace_id, request.item_id, request.page_size, request.page_token
        )
        return photos_pb2.ListPhotosResponse(
            photos=[photo_to_proto(p, self._base_url) for p in page.photos],
            next_page_token=page.next_token,
        )

    @grpc_errors
    async def DeletePhoto(  # noqa: N802
        self, request: photos_pb2.DeletePhotoRequest, context: grpc.aio.ServicerContext
    ) -> photos_pb2.DeletePhotoResponse:
        with tracing.traced(trace_from(context), request.photo_id):
            await self._service.delete(request.workspace_id, request.photo_id)
        return photos_pb2.DeletePhotoResponse()

    @grpc_errors
    async def RetryThumbnails(  # noqa: N802
        self, request: photos_pb2.RetryThumbnailsRequest, context: grpc.aio.ServicerContext
    ) -> photos_pb2.Photo:
        with tracing.traced(trace_from(context), request.photo_id):
            photo = await self._service.retry(request.workspace_id, request.photo_id)
        return photo_to_proto(photo, self._base_url)


def trace_from(context: grpc.aio.ServicerContext) -> str | None:
    """The trace id a client sent in the call's metadata, to join its own trace; else None
    (a new trace starts)."""
    for key, value in context.invocation_metadata() or ():
        if key == tracing.TRACE_HEADER:
            return tracing.valid_trace(value)
    return None
