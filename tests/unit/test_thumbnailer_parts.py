"""The thumbnailer's small pure parts: failure classification and address parsing."""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool

import asyncpg
import pytest

from services.core.http_server import split_address
from services.core.imageinfo import ImageRejected
from services.core.storage import ObjectNotFound, StorageError
from services.thumbnailer.failures import EXPECTED_ERRORS, FailureKind, classify
from services.thumbnailer.imaging import ImagingError
from services.thumbnailer.shared_buffer import SharedBuffer


@pytest.mark.parametrize(
    ("error", "kind", "reason"),
    [
        (ImagingError("the original could not be decoded"), "permanent", "could not be decoded"),
        (ImageRejected("not an image"), "permanent", "not an image"),
        (ObjectNotFound("key"), "permanent", "the original is missing from storage"),
        (StorageError("object storage unreachable"), "transient", "unreachable"),
        (asyncpg.CannotConnectNowError("starting up"), "transient", "starting up"),
        (ConnectionRefusedError("refused"), "transient", "refused"),
        (BrokenProcessPool("gone"), "transient", "worker process died"),
        (TimeoutError("slow"), "transient", "slow"),
    ],
)
def test_failures_are_classified_with_a_reason(
    error: BaseException, kind: FailureKind, reason: str
) -> None:
    assert isinstance(error, EXPECTED_ERRORS)
    failure = classify(error)
    assert failure.kind == kind
    assert reason in failure.reason


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:9102", ("127.0.0.1", 9102)),
        ("[::1]:80", ("::1", 80)),
        (":9102", ("0.0.0.0", 9102)),
    ],
)
def test_split_address(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


def test_a_shared_buffer_refuses_more_than_it_holds() -> None:
    shared = SharedBuffer.create(8)
    try:
        shared.write(b"12345678")
        shared.write(b"abc")
        assert shared.read(3) == b"abc"
        with pytest.raises(ValueError):
            shared.write(b"123456789")
    finally:
        shared.close()
    assert shared.closed
