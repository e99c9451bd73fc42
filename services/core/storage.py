"""Object storage (S3, MinIO in deployment) behind a small async interface.

The minio client blocks, so every call runs in a worker thread of the store's own: as many as
its HTTP connections. In the event loop's default executor (cpu_count + 4 threads: 6 on two
cores) eight concurrent uploads queued for a thread, each S3 call holding one for its whole
exchange, and every other asyncio.to_thread call (an upload's header check) queued behind them
(docs/benchmarks.md, upload latency)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

import aiohttp
import urllib3
from minio import Minio
from minio.credentials import Credentials
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error

from services.core.config import Settings
from services.core.object_put import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    RETRIED_STATUSES,
    RETRY_PAUSE_S,
    PutRefused,
    SignedPut,
)

log = logging.getLogger(__name__)

# Objects up to this size are PUT on the event loop (object_put.py); larger ones through minio,
# which splits those above 5 MiB into parts.
SMALL_PUT_BYTES = 5 * 1024 * 1024


class StorageError(Exception):
    """The store could not be reached or did not answer as expected: worth retrying."""


class ObjectNotFound(Exception):
    """No object under that key."""


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str
    content_type: str


class ObjectStore:
    def __init__(self, client: Minio, bucket: str, threads: int, small_puts: SignedPut) -> None:
        self._client = client
        self.bucket = bucket
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="object-store")
        self._small_puts = small_puts

    @classmethod
    def from_settings(cls, settings: Settings, max_connections: int = 16) -> ObjectStore:
        endpoint = urlsplit(settings.s3_endpoint_or_dev)
        http = urllib3.PoolManager(
            maxsize=max_connections,
            timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S),
            retries=urllib3.Retry(
                total=1, backoff_factor=RETRY_PAUSE_S, status_forcelist=sorted(RETRIED_STATUSES)
            ),
        )
        client = Minio(
            endpoint.netloc,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=endpoint.scheme == "https",
            region=settings.s3_region,
            http_client=http,
        )
        credentials = Credentials(settings.s3_access_key, settings.s3_secret_key)
        small_puts = SignedPut(
            settings.s3_endpoint_or_dev,
            settings.s3_bucket,
            credentials,
            settings.s3_region,
            max_connections,
        )
        return cls(client, settings.s3_bucket, max_connections, small_puts)

    async def close(self) -> None:
        """Closes the event loop's HTTP connections and lets the store's threads end (a call
        still running finishes first; none may be started after)."""
        await self._small_puts.close()
        self._threads.shutdown(wait=False)

    async def ensure_bucket(self) -> None:
        def ensure() -> None:
            if not self._client.bucket_exists(self.bucket):
                self._client.make_bucket(self.bucket)

        await self._call(ensure)

    async def put(self, key: str, data: bytes, content_type: str, sha256: str = "") -> None:
        """`sha256`: the data's SHA-256 (hex), if the caller has it already."""
        if len(data) > SMALL_PUT_BYTES:
            await self.put_stream(key, io.BytesIO(data), len(data), content_type)
            return
        try:
            await self._small_puts.put(key, data, content_type, sha256)
        except PutRefused as exc:
            raise StorageError(f"object storage refused the request: {exc.code or exc}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise unreachable(exc) from exc

    async def put_stream(self, key: str, stream: BinaryIO, length: int, content_type: str) -> None:
        await self._call(
            self._client.put_object, self.bucket, key, stream, length, content_type=content_type
        )

    async def get(self, key: str) -> bytes:
        def read() -> bytes:
            response = self._client.get_object(self.bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return await self._call(read)

    async def stat(self, key: str) -> ObjectInfo:
        st = await self._call(self._client.stat_object, self.bucket, key)
        return ObjectInfo(size=st.size or 0, etag=st.etag or "", content_type=st.content_type or "")

    async def delete_many(self, keys: list[str]) -> None:
        def delete() -> None:
            errors = self._client.remove_objects(self.bucket, [DeleteObject(k) for k in keys])
            for error in errors:
                if error.code != "NoSuchKey":
                    raise StorageError(f"could not delete {error.name}: {error.message}")

        await self._call(delete)

    async def _call(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            # As asyncio.to_thread: the call sees this task's context (the log's trace id).
            call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(self._threads, call)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise ObjectNotFound(exc.resource or "") from exc
            raise StorageError(f"object storage refused the request: {exc.code}") from exc
        except InvalidResponseError as exc:
            # Some S3 servers answer a missing key with a body minio cannot parse. A 404 for
            # anything else (a missing bucket) is a broken store, not a missing object.
            if getattr(exc, "_code", None) == 404 and "NoSuchKey" in str(exc):
                raise ObjectNotFound(str(args[1:2])) from exc
            raise StorageError(f"object storage answered badly: {exc}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise unreachable(exc) from exc


def unreachable(exc: BaseException) -> StorageError:
    """The error for a request that got no answer from the store, whichever client made it."""
    return StorageError(f"object storage unreachable: {type(exc).__name__}")
