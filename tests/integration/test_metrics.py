"""Each service's /metrics, scraped after real work: uploads, thumbnails, events."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import aiohttp
import asyncpg
import grpc
import pytest
from aio_pika.abc import AbstractRobustConnection
from thumbwire.v1 import photos_pb2_grpc

from services.core import database
from services.core.broker import persistent_message
from services.core.config import Settings
from services.core.storage import ObjectStore
from services.core.topology import PARKED_ROUTING_KEY, Topology, declare_topology
from services.notifier.app import serve as serve_notifier
from services.thumbnailer.app import serve as serve_thumbnailer
from services.thumbnailer.backlog import BacklogGauges
from services.thumbnailer.metrics import ThumbnailerMetrics
from services.upload.app import serve as serve_upload
from tests.support import images
from tests.support.auth import AuthedChannels, auth_headers, token_for
from tests.support.outages import SERVING, grpc_health, own_database, until, with_database
from tests.support.ports import free_address
from tests.support.scrape import scrape
from tests.support.services import running_upload, serving
from tests.support.streams import SseSubscription
from tests.support.uploads import upload


async def test_upload_counts_uploads_bytes_and_latency(
    settings: Settings, store: ObjectStore
) -> None:
    ws = workspace()
    good, bad = images.jpeg(64, 48), b"not an image at all"
    async with running_upload(settings) as svc:
        await upload(svc.stub_for(ws), ws, "i", good)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await upload(svc.stub_for(ws), ws, "i", bad)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        metrics = await scrape(svc.settings.upload_metrics_addr)
    assert metrics.value("thumbwire_upload_uploads_total", outcome="ok") == 1
    assert metrics.value("thumbwire_upload_uploads_total", outcome="invalid_argument") == 1
    assert metrics.value("thumbwire_upload_received_bytes_total") == len(good) + len(bad)
    assert metrics.value("thumbwire_upload_seconds_count") == 2


async def test_a_photo_shows_in_thumbnailer_and_notifier_metrics(
    settings: Settings, pool: asyncpg.Pool, store: ObjectStore, http: aiohttp.ClientSession
) -> None:
    # A database of its own: another test's outbox rows would be jobs for this thumbnailer.
    async with own_database(pool, settings) as own_db:
        own = with_database(
            settings,
            own_db,
            namespace=f"{settings.namespace}-metrics",
            upload_addr=free_address(),
            upload_metrics_addr=free_address(),
            thumbnailer_metrics_addr=free_address(),
        )
        await photo_through_the_pipeline(own, http)


async def photo_through_the_pipeline(own: Settings, http: aiohttp.ClientSession) -> None:
    """One photo uploaded, made and announced over SSE; then each service's metrics."""
    ws = workspace()
    async with serving(serve_upload, own), serving(serve_thumbnailer, own):
        async with serving(serve_notifier, own):
            await until(lambda: gateway_up(http, own), 200)
            await until(lambda: grpc_health(own.upload_addr), SERVING)
            events = await SseSubscription.open(
                http,
                f"http://{own.gateway_addr}/v1/workspaces/{ws}/events",
                auth_headers(token_for(own, ws)),
            )
            await until(lambda: subscribers(own, "sse"), 1)
            await upload_through(own, ws)
            types = [frame.fields["event"] for frame in await events.take_events(3)]
            assert types[-1] == "photo.thumbnail_ready"
            notifier = await scrape(own.gateway_addr)
            await events.close()
            await until(lambda: subscribers(own, "sse"), 0)
        thumbnailer = await scrape(own.thumbnailer_metrics_addr)
    assert notifier.value("thumbwire_notifier_events_delivered_total", transport="sse") == 3
    completed = {"outcome": "completed", "attempt": "1"}
    assert thumbnailer.value("thumbwire_thumbnailer_jobs_total", **completed) == 1
    for size in ("small", "medium", "large"):
        assert thumbnailer.value("thumbwire_thumbnailer_render_seconds_count", size=size) == 1
    assert thumbnailer.value("thumbwire_thumbnailer_parked_jobs") == 0


async def test_backlog_gauges_read_outbox_lag_and_parked_jobs(
    settings: Settings, pool: asyncpg.Pool, amqp: AbstractRobustConnection
) -> None:
    async with own_database(pool, settings) as own_db:
        own = dataclasses.replace(
            settings, database_url=own_db.url, namespace=f"{settings.namespace}-backlog"
        )
        topology = Topology.from_settings(own)
        exchanges = await declare_topology(await amqp.channel(), topology)
        for n in range(2):
            message = persistent_message(b"{}", f"parked-{n}")
            await exchanges["jobs"].publish(message, routing_key=PARKED_ROUTING_KEY)
        await database.prepare(own.database_url)
        own_pool = await database.create_pool(own.database_url)
        try:
            await own_pool.execute(
                "INSERT INTO outbox (exchange, routing_key, body, created_at)"
                " VALUES ('jobs', 'job', '{}', clock_timestamp() - interval '90 seconds')"
            )
            metrics = ThumbnailerMetrics()
            gauges = BacklogGauges(own_pool, amqp, topology.parked_queue, metrics, 1.0)
            await gauges.update()
            assert gauge(metrics, "thumbwire_thumbnailer_outbox_lag_seconds") >= 90
            assert gauge(metrics, "thumbwire_thumbnailer_parked_jobs") == 2

            # One more parked job, read through the same channel.
            await exchanges["jobs"].publish(
                persistent_message(b"{}", "parked-2"), routing_key=PARKED_ROUTING_KEY
            )
            await _until_parked(gauges, metrics, 3)  # a quorum queue's count lags a little
            await gauges.close()
        finally:
            await own_pool.close()


async def test_backlog_gauges_read_again_after_the_parking_queue_was_missing(
    settings: Settings, pool: asyncpg.Pool, amqp: AbstractRobustConnection
) -> None:
    """A failed passive declare closes its channel; the next reading opens another."""
    topology = Topology.from_settings(
        dataclasses.replace(settings, namespace=f"{settings.namespace}-{workspace()}")
    )
    metrics = ThumbnailerMetrics()
    gauges = BacklogGauges(pool, amqp, topology.parked_queue, metrics, 1.0)
    await gauges.update()  # no such queue yet: the reading fails, the gauge stays 0
    assert gauge(metrics, "thumbwire_thumbnailer_parked_jobs") == 0

    exchanges = await declare_topology(await amqp.channel(), topology)  # the run's cleanup
    await exchanges["jobs"].publish(
        persistent_message(b"{}", "parked-0"), routing_key=PARKED_ROUTING_KEY
    )
    try:
        await _until_parked(gauges, metrics, 1)
    finally:
        await gauges.close()


async def _until_parked(gauges: BacklogGauges, metrics: ThumbnailerMetrics, count: int) -> None:
    async def parked() -> float:
        await gauges.update()
        return gauge(metrics, "thumbwire_thumbnailer_parked_jobs")

    await until(parked, count)


def workspace() -> str:
    return f"ws-{uuid.uuid4().hex[:10]}"


def gauge(metrics: ThumbnailerMetrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


async def gateway_up(http: aiohttp.ClientSession, settings: Settings) -> int:
    try:
        async with http.get(f"http://{settings.gateway_addr}/healthz") as response:
            return response.status
    except OSError:
        return 0


async def subscribers(settings: Settings, transport: str) -> float | None:
    metrics = await scrape(settings.gateway_addr)
    return metrics.value("thumbwire_notifier_subscribers", transport=transport)


async def upload_through(settings: Settings, ws: str) -> None:
    channels = AuthedChannels(settings, settings.upload_addr)
    try:
        await asyncio.wait_for(
            upload(
                channels.stub(photos_pb2_grpc.PhotoServiceStub, ws), ws, "i", images.jpeg(40, 30)
            ),
            20,
        )
    finally:
        await channels.close()
