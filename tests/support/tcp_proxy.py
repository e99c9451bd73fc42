"""A TCP proxy a test owns, to cut a service off from a dependency and restore it, for real:
while cut, open connections are reset and new ones are refused."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from urllib.parse import urlsplit

from tests.support.ports import free_address


class TcpProxy:
    """Forwards 127.0.0.1:<port> to `target` ("host:port") from a thread of its own, so that
    it works the same for services in other processes and for blocking code in this one."""

    def __init__(self, target: str) -> None:
        self._target_host, target_port = target.rsplit(":", 1)
        self._target_port = int(target_port)
        self.address = free_address()
        self._host, port = self.address.rsplit(":", 1)
        self._port = int(port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @classmethod
    def in_front_of(cls, url: str) -> TcpProxy:
        """A started proxy to the host and port of `url` (a database, broker or S3 URL)."""
        return cls(_host_port(url)).start()

    def url_through(self, url: str) -> str:
        """`url`, reaching its server through this proxy: the same but for host and port."""
        parts = urlsplit(url)
        user, at, _ = parts.netloc.rpartition("@")
        return parts._replace(netloc=f"{user}{at}{self.address}").geturl()

    def start(self) -> TcpProxy:
        self._thread.start()
        self.restore()
        return self

    def stop(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def cut(self) -> None:
        """Stops listening and resets every open connection."""
        self._call(self._cut())

    def restore(self) -> None:
        """Listens again; new connections reach the target."""
        self._call(self._listen())

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(5)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, self._host, self._port, reuse_address=True
            )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _accept(
        self, client_reader: asyncio.StreamReader, client: asyncio.StreamWriter
    ) -> None:
        try:
            upstream_reader, upstream = await asyncio.open_connection(
                self._target_host, self._target_port
            )
        except OSError:
            client.transport.abort()
            return
        self._writers.update((client, upstream))
        await asyncio.gather(
            self._pipe(client_reader, upstream), self._pipe(upstream_reader, client)
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.transport.abort()


def _host_port(url: str) -> str:
    return urlsplit(url).netloc.rpartition("@")[2]
