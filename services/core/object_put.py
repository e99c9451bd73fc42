"""PUTs of objects up to 5 MiB (the thumbnails, and originals received in memory) on the event
loop, through aiohttp, signed as minio signs them (SigV4, path-style URLs).

Through minio, each PUT took a worker thread, urllib3's connection pool and http.client's
header parsing: three thumbnails of a 12 MP JPEG (40, 16 and 4 KB) cost the thumbnailer 2.1 ms
of CPU; this way 0.8-0.9 ms (30 rounds each, against the embedded S3 server). Larger objects
still go through minio (storage.py), which uploads them in parts."""

from __future__ import annotations

import asyncio
import hashlib
import re
from urllib.parse import quote, urlsplit

import aiohttp
from minio.credentials import Credentials
from minio.signer import sign_v4_s3
from minio.time import to_amz_date, utcnow
from yarl import URL

# How every S3 request is made, through minio's urllib3 (storage.py) or here: 3 s to connect,
# 30 s for each read, and a 502, 503 or 504 tried once more after a short pause.
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 30.0
RETRIED_STATUSES = frozenset({502, 503, 504})
RETRY_PAUSE_S = 0.2

_TIMEOUT = aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S)
_ERROR_CODE = re.compile(rb"<Code>([^<]+)</Code>")


class PutRefused(Exception):
    """The store answered a PUT with an error; `code` is its S3 error code, if it gave one."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"HTTP {status} {code}")
        self.status = status
        self.code = code


class SignedPut:
    """One aiohttp session (created on first use, on the running loop); aiohttp retries a PUT
    once on a kept-alive connection that the server had closed, as urllib3 did."""

    def __init__(
        self, endpoint: str, bucket: str, credentials: Credentials, region: str, connections: int
    ) -> None:
        self._base = endpoint.rstrip("/")
        self._host = urlsplit(endpoint).netloc
        self._bucket = bucket
        self._credentials = credentials
        self._region = region
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def put(self, key: str, data: bytes, content_type: str, sha256: str = "") -> None:
        """Raises PutRefused, or aiohttp's and the socket's errors. A 502, 503 or 504 is tried
        once more after a pause (RETRIED_STATUSES), as minio's requests are. `sha256`: the
        data's SHA-256 (hex), if the caller has it already (the payload is signed over it)."""
        content_sha256 = sha256 or hashlib.sha256(data).hexdigest()
        try:
            await self._put_once(key, data, content_type, content_sha256)
        except PutRefused as exc:
            if exc.status not in RETRIED_STATUSES:
                raise
            await asyncio.sleep(RETRY_PAUSE_S)
            await self._put_once(key, data, content_type, content_sha256)

    async def _put_once(self, key: str, data: bytes, content_type: str, sha256: str) -> None:
        url = f"{self._base}/{quote(self._bucket)}/{quote(key)}"
        headers = self._signed(url, len(data), content_type, sha256)
        async with self._open().put(URL(url, encoded=True), data=data, headers=headers) as reply:
            body = await reply.read()
            if reply.status >= 300:
                found = _ERROR_CODE.search(body)
                raise PutRefused(reply.status, found.group(1).decode() if found else "")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._connections)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=_TIMEOUT, skip_auto_headers=("User-Agent",)
            )
        return self._session

    def _signed(self, url: str, length: int, content_type: str, sha256: str) -> dict[str, str]:
        date = utcnow()
        headers = {
            "Host": self._host,
            "Content-Type": content_type,
            "Content-Length": str(length),
            "x-amz-date": to_amz_date(date),
            "x-amz-content-sha256": sha256,
        }
        return sign_v4_s3(
            method="PUT",
            url=urlsplit(url),
            region=self._region,
            headers=headers,
            credentials=self._credentials,
            content_sha256=sha256,
            date=date,
        )
