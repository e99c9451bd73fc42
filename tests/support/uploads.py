"""A gRPC client's side of UploadPhoto, as tests use it."""

from __future__ import annotations

from collections.abc import AsyncIterator

from thumbwire.v1 import photos_pb2, photos_pb2_grpc

CHUNK_BYTES = 64 * 1024


async def upload_requests(
    data: bytes, metadata: photos_pb2.UploadMetadata | None, chunk_bytes: int = CHUNK_BYTES
) -> AsyncIterator[photos_pb2.UploadPhotoRequest]:
    if metadata is not None:
        yield photos_pb2.UploadPhotoRequest(metadata=metadata)
    for start in range(0, len(data), chunk_bytes):
        yield photos_pb2.UploadPhotoRequest(chunk=data[start : start + chunk_bytes])


async def upload(
    stub: photos_pb2_grpc.PhotoServiceStub,
    workspace_id: str,
    item_id: str,
    data: bytes,
    **fields: str,
) -> photos_pb2.Photo:
    metadata = photos_pb2.UploadMetadata(workspace_id=workspace_id, item_id=item_id, **fields)
    return await stub.UploadPhoto(upload_requests(data, metadata))
