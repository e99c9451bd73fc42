"""A gRPC client's side of UploadPhoto, as tests use it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
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
    call_metadata: tuple = (),
    **fields: str,
) -> photos_pb2.Photo:
    """Uploads `data`; `call_metadata` for a stub whose channel carries no token of its own."""
    metadata = photos_pb2.UploadMetadata(workspace_id=workspace_id, item_id=item_id, **fields)
    return await stub.UploadPhoto(upload_requests(data, metadata), metadata=call_metadata)


async def rejected_upload(
    stub: photos_pb2_grpc.PhotoServiceStub,
    workspace_id: str,
    call_metadata: tuple = (),
    sent_before_hold: int = 1,
) -> grpc.aio.AioRpcError:
    """The error of an upload the server rejects early (no token, another workspace). Only the
    first `sent_before_hold` messages go out before the call has ended: a grpc.aio client that
    writes after the server ended the call may report INTERNAL instead of the server's status
    (grpc/grpc#36066), so the rest waits. 0 for a rejection of the token itself, which comes
    before any message is read; 1 for one of the workspace, which needs the metadata message."""
    release = asyncio.Event()
    messages = [
        photos_pb2.UploadPhotoRequest(
            metadata=photos_pb2.UploadMetadata(workspace_id=workspace_id, item_id="i")
        ),
        photos_pb2.UploadPhotoRequest(chunk=b"not read"),
    ]

    async def requests() -> AsyncIterator[photos_pb2.UploadPhotoRequest]:
        for index, message in enumerate(messages):
            if index == sent_before_hold:
                await release.wait()
            yield message

    try:
        await stub.UploadPhoto(requests(), metadata=call_metadata)
    except grpc.aio.AioRpcError as error:
        return error
    finally:
        release.set()
    raise AssertionError(f"the upload to {workspace_id} was accepted")
