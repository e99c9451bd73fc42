"""Reading an upload stream: the metadata message first, then chunks, never holding more than
the byte cap; small uploads stay in memory, larger ones spill to a temporary file."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO

from thumbwire.v1 import photos_pb2

from services.core.errors import InvalidArgument, TooLarge

_SPOOL_IN_MEMORY_BYTES = 1024 * 1024


@dataclass
class ReceivedFile:
    file: IO[bytes]
    size: int

    def close(self) -> None:
        self.file.close()


async def read_metadata(
    requests: AsyncIterator[photos_pb2.UploadPhotoRequest],
) -> photos_pb2.UploadMetadata:
    first = await anext(requests, None)
    if first is None or first.WhichOneof("payload") != "metadata":
        raise InvalidArgument("the first UploadPhotoRequest must carry metadata")
    return first.metadata


async def read_chunks(
    requests: AsyncIterator[photos_pb2.UploadPhotoRequest], max_bytes: int
) -> ReceivedFile:
    """Reads the remaining chunks; TooLarge as soon as they pass `max_bytes`."""
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115
    size = 0
    try:
        async for request in requests:
            if request.WhichOneof("payload") != "chunk":
                raise InvalidArgument("only the first UploadPhotoRequest may carry metadata")
            size += len(request.chunk)
            if size > max_bytes:
                raise TooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
            spool.write(request.chunk)
    except BaseException:
        spool.close()
        raise
    if size == 0:
        spool.close()
        raise InvalidArgument("the upload has no image bytes: send chunks after the metadata")
    spool.seek(0)
    return ReceivedFile(spool, size)
