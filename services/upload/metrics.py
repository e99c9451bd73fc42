"""The upload service's Prometheus metrics, in a registry of its own (no global state)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from thumbwire.v1 import photos_pb2

from services.core.errors import ClientError

T = TypeVar("T")
Requests = AsyncIterator[photos_pb2.UploadPhotoRequest]

_UPLOAD_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# `ok`, or the code a client was answered with (invalid_argument, unavailable, ...).
OK = "ok"
UNEXPECTED = "internal"


class UploadMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.uploads = Counter(
            "thumbwire_upload_uploads",
            "UploadPhoto calls ended, by outcome (ok, or the status code answered).",
            ["outcome"],
            registry=self.registry,
        )
        self.received_bytes = Counter(
            "thumbwire_upload_received_bytes",
            "Bytes of photo data received in UploadPhoto chunks, refused uploads included.",
            registry=self.registry,
        )
        self.upload_seconds = Histogram(
            "thumbwire_upload_seconds",
            "Time from the start of an UploadPhoto call to its answer.",
            buckets=_UPLOAD_BUCKETS_S,
            registry=self.registry,
        )
        self.uploads.labels(outcome=OK)

    async def observe(self, upload: Callable[[Requests], Awaitable[T]], requests: Requests) -> T:
        """Runs `upload(requests)`, counting its bytes, its outcome and its duration."""
        started = time.monotonic()
        outcome = UNEXPECTED
        try:
            result = await upload(self._counting(requests))
            outcome = OK
            return result
        except ClientError as exc:
            outcome = exc.code.name.lower()
            raise
        finally:
            self.uploads.labels(outcome=outcome).inc()
            self.upload_seconds.observe(time.monotonic() - started)

    async def _counting(self, requests: Requests) -> Requests:
        async for request in requests:
            if request.WhichOneof("payload") == "chunk":
                self.received_bytes.inc(len(request.chunk))
            yield request
