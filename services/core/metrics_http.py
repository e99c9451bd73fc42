"""Serving a Prometheus registry over HTTP: the /metrics handler every service uses."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from services.core.http_server import start_http

METRICS_PATH = "/metrics"


def metrics_handler(registry: CollectorRegistry) -> web.Handler:
    """A GET handler answering with the registry in the text exposition format."""

    async def metrics_page(_request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return metrics_page


async def start_metrics_server(registry: CollectorRegistry, address: str) -> web.AppRunner:
    """/metrics alone at `address`; the caller stops it with `runner.cleanup()`."""
    app = web.Application()
    app.router.add_get(METRICS_PATH, metrics_handler(registry))
    return await start_http(app, address)
