"""The event loop's PUTs (services/core/object_put.py) against a small HTTP server of the
test's own: which answers are tried again, and which are not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from minio.credentials import Credentials

from services.core.object_put import PutRefused, SignedPut

SLOW_DOWN = b"<Error><Code>SlowDown</Code></Error>"


class FlakyStore:
    """Answers each PUT with the next status of `statuses` (200 once they run out)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        await request.read()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, body=SLOW_DOWN if status >= 300 else b"")


@pytest.fixture
async def serve() -> AsyncIterator:
    runners: list[web.AppRunner] = []
    puts: list[SignedPut] = []

    async def start(store: FlakyStore) -> SignedPut:
        app = web.Application()
        app.router.add_put("/{tail:.*}", store.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        put = SignedPut(f"http://127.0.0.1:{port}", "b", Credentials("k", "s"), "us-east-1", 2)
        puts.append(put)
        return put

    yield start
    for put in puts:
        await put.close()
    for runner in runners:
        await runner.cleanup()


async def test_a_busy_store_is_tried_once_more(serve) -> None:
    store = FlakyStore(503)
    put = await serve(store)
    await put.put("a/b.webp", b"x", "image/webp")
    assert store.requests == 2


async def test_a_store_busy_twice_or_refusing_is_an_error_with_its_code(serve) -> None:
    busy, refusing = FlakyStore(503, 503), FlakyStore(500)
    for store, requests in ((busy, 2), (refusing, 1)):
        put = await serve(store)
        with pytest.raises(PutRefused) as refused:
            await put.put("a/b.webp", b"x", "image/webp")
        assert refused.value.code == "SlowDown"
        assert store.requests == requests
