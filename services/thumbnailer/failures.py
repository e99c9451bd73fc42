"""Which errors a job can never get past and which are worth another try: the one place that
decides, so that the retry ladder can grow here without touching the consumer."""

from __future__ import annotations

from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

from services.core.imageinfo import ImageRejected
from services.core.storage import ObjectNotFound, StorageError


class FailureKind(StrEnum):
    PERMANENT = "permanent"  # the same input fails the same way: fail the photo at once
    TRANSIENT = "transient"  # a dependency misbehaved: another attempt may work


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    reason: str  # shown to clients as thumbnail_error


# The errors a job expects; anything else is a bug and is left to the consumer's guard.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ImageRejected,
    ObjectNotFound,
    StorageError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    BrokenProcessPool,
    TimeoutError,
    OSError,
)


def classify(exc: BaseException) -> Failure:
    """The kind and the client-facing reason of an error from EXPECTED_ERRORS."""
    if isinstance(exc, ImageRejected):
        return Failure(FailureKind.PERMANENT, str(exc))
    if isinstance(exc, ObjectNotFound):
        return Failure(FailureKind.PERMANENT, "the original is missing from storage")
    if isinstance(exc, StorageError):
        return Failure(FailureKind.TRANSIENT, f"storage error: {exc}")
    if isinstance(exc, BrokenProcessPool):
        # A worker process died (killed, out of memory): possibly this image's fault.
        return Failure(FailureKind.TRANSIENT, "the image worker process died")
    return Failure(FailureKind.TRANSIENT, f"temporary error: {type(exc).__name__}: {exc}")
