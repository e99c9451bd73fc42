"""Reading an upload stream: the metadata message first, then chunks, never holding more than
the byte cap.

An upload's bytes stay in memory while the process's budget for uploads in memory (all of
them together) allows; past it, they go on to a temporary file. Written to a file and read back,
a 3 MB upload cost the upload service about 1 ms of CPU when the file's pages were warm and
up to 10 ms when they were not (every fresh page of the page cache is a fault on this VM), the
largest of its own costs per upload (docs/benchmarks.md, upload latency).

The SHA-256 of the bytes held in memory is taken chunk by chunk as they arrive: the PUT of the
original is signed over it (SigV4 over plain HTTP), and taken here it costs no pass over the
whole body on the event loop afterwards."""

from __future__ import annotations

import hashlib
import io
import tempfile
from collections.abc import AsyncIterator
from typing import IO

from thumbwire.v1 import photos_pb2

from services.core.errors import InvalidArgument, TooLarge

# All uploads in progress in one process hold at most this much in memory; an upload that
# would pass it goes on in a temporary file. Four uploads at the default size cap, or some
# forty 3 MB phone photos.
UPLOADS_IN_MEMORY_BYTES = 128 * 1024 * 1024


class MemoryBudget:
    """Bytes that uploads in progress may hold in memory, together. Used from one event loop."""

    def __init__(self, limit: int = UPLOADS_IN_MEMORY_BYTES) -> None:
        self.free = limit

    def take(self, n: int) -> bool:
        if n > self.free:
            return False
        self.free -= n
        return True

    def give_back(self, n: int) -> None:
        self.free += n


class ReceivedFile:
    """An upload's bytes: `data`, with their SHA-256 (hex), when they were held in memory;
    else a temporary file. close() gives their memory back to the budget."""

    def __init__(self, spool: _Spool) -> None:
        self.size = spool.size
        self._spool = spool
        self.data = spool.in_memory()
        self.sha256 = spool.sha256() if self.data is not None else ""

    def reader(self) -> IO[bytes]:
        """The bytes from the start: a new reader of the memory, or the file rewound."""
        if self.data is not None:
            return io.BytesIO(self.data)
        return self._spool.rewound_file()

    def close(self) -> None:
        self.data = None
        self._spool.close()


class _Spool:
    def __init__(self, budget: MemoryBudget) -> None:
        self.size = 0
        self._budget = budget
        self._chunks: list[bytes] = []
        self._held = 0  # taken from the budget
        self._hash = hashlib.sha256()
        self._file: IO[bytes] | None = None

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._file is None and self._budget.take(len(chunk)):
            self._held += len(chunk)
            self._chunks.append(chunk)
            self._hash.update(chunk)
            return
        if self._file is None:
            self._spill()
        assert self._file is not None
        self._file.write(chunk)

    def in_memory(self) -> bytes | None:
        if self._file is not None:
            return None
        data = b"".join(self._chunks)
        self._chunks = [data]
        return data

    def sha256(self) -> str:
        return self._hash.hexdigest()

    def rewound_file(self) -> IO[bytes]:
        assert self._file is not None
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        self._release_memory()
        if self._file is not None:
            self._file.close()

    def _spill(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close())
        self._file.writelines(self._chunks)
        self._release_memory()

    def _release_memory(self) -> None:
        self._chunks = []
        self._budget.give_back(self._held)
        self._held = 0


async def read_metadata(
    requests: AsyncIterator[photos_pb2.UploadPhotoRequest],
) -> photos_pb2.UploadMetadata:
    first = await anext(requests, None)
    if first is None or first.WhichOneof("payload") != "metadata":
        raise InvalidArgument("the first UploadPhotoRequest must carry metadata")
    return first.metadata


async def read_chunks(
    requests: AsyncIterator[photos_pb2.UploadPhotoRequest], max_bytes: int, budget: MemoryBudget
) -> ReceivedFile:
    """Reads the remaining chunks; TooLarge as soon as they pass `max_bytes`."""
    spool = _Spool(budget)
    try:
        async for request in requests:
            if request.WhichOneof("payload") != "chunk":
                raise InvalidArgument("only the first UploadPhotoRequest may carry metadata")
            chunk = request.chunk  # each read of the field copies it
            if spool.size + len(chunk) > max_bytes:
                raise TooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
            spool.add(chunk)
        if spool.size == 0:
            raise InvalidArgument("the upload has no image bytes: send chunks after the metadata")
    except BaseException:
        spool.close()
        raise
    return ReceivedFile(spool)
