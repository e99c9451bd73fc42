"""Receiving an upload's chunks: in memory within the budget, in a file past it, the budget
always given back."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
from thumbwire.v1 import photos_pb2

from services.core.errors import InvalidArgument, TooLarge
from services.upload.receiving import MemoryBudget, read_chunks

CHUNKS = [bytes([n]) * 1000 for n in range(5)]
WHOLE = b"".join(CHUNKS)


async def _stream(*requests: photos_pb2.UploadPhotoRequest) -> AsyncIterator:
    for request in requests:
        yield request


def _chunks(chunks: list[bytes]) -> list[photos_pb2.UploadPhotoRequest]:
    return [photos_pb2.UploadPhotoRequest(chunk=c) for c in chunks]


async def test_an_upload_within_the_budget_is_held_in_memory_with_its_hash() -> None:
    budget = MemoryBudget(10_000)
    received = await read_chunks(_stream(*_chunks(CHUNKS)), 1_000_000, budget)
    assert received.data == WHOLE and received.size == len(WHOLE)
    assert received.sha256 == hashlib.sha256(WHOLE).hexdigest()
    assert received.reader().read() == WHOLE
    assert received.reader().read() == WHOLE  # each reader starts at the beginning
    assert budget.free == 10_000 - len(WHOLE)
    received.close()
    assert budget.free == 10_000


async def test_an_upload_past_the_budget_goes_on_in_a_file_and_gives_the_memory_back() -> None:
    budget = MemoryBudget(2_500)  # two chunks and a half
    received = await read_chunks(_stream(*_chunks(CHUNKS)), 1_000_000, budget)
    assert received.data is None and received.sha256 == ""
    assert received.size == len(WHOLE)
    assert budget.free == 2_500  # what it held in memory went to the file with the rest
    assert received.reader().read() == WHOLE
    assert received.reader().read() == WHOLE
    received.close()
    assert budget.free == 2_500


async def test_uploads_share_the_budget() -> None:
    budget = MemoryBudget(len(WHOLE))
    first = await read_chunks(_stream(*_chunks(CHUNKS)), 1_000_000, budget)
    second = await read_chunks(_stream(*_chunks(CHUNKS)), 1_000_000, budget)
    assert first.data == WHOLE and second.data is None
    assert second.reader().read() == WHOLE
    first.close()
    second.close()
    assert budget.free == len(WHOLE)


@pytest.mark.parametrize(
    ("requests", "error", "message"),
    [
        (_chunks(CHUNKS), TooLarge, "larger than the limit of 4500 bytes"),
        ([], InvalidArgument, "no image bytes"),
        (
            [*_chunks(CHUNKS[:2]), photos_pb2.UploadPhotoRequest(metadata={})],
            InvalidArgument,
            "only the first UploadPhotoRequest may carry metadata",
        ),
    ],
)
async def test_a_refused_stream_gives_its_memory_back(
    requests: list[photos_pb2.UploadPhotoRequest], error: type[Exception], message: str
) -> None:
    budget = MemoryBudget(10_000)
    with pytest.raises(error, match=message):
        await read_chunks(_stream(*requests), 4_500, budget)
    assert budget.free == 10_000
