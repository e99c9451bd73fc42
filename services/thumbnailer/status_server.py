"""The thumbnailer's only HTTP surface: GET /metrics; GET /healthz, readiness, which is 503
while the thumbnailer is not ready (its database or broker unreachable, or it is stopping);
and GET /livez, liveness, 200 while its event loop answers: a thumbnailer waiting out an
outage recovers by itself, so it must not be restarted for it (services.core.readiness)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from services.core.http_server import start_http
from services.core.readiness import Readiness
from services.thumbnailer.metrics import ThumbnailerMetrics


class StatusServer:
    def __init__(self, address: str, metrics: ThumbnailerMetrics, readiness: Readiness) -> None:
        self._address = address
        self._metrics = metrics
        self._readiness = readiness
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics_page)
        app.router.add_get("/healthz", self._health)
        app.router.add_get("/livez", self._alive)
        self._runner = await start_http(app, self._address)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _metrics_page(self, _request: web.Request) -> web.Response:
        response = web.Response(body=self._metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _alive(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _health(self, _request: web.Request) -> web.Response:
        if self._readiness.ready:
            return web.Response(text="ok")
        return web.Response(status=503, text="not ready")
