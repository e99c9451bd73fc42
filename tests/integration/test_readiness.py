"""gRPC health and the thumbnailer's /healthz follow real readiness: NOT_SERVING while the
database refuses connections and SERVING again after; NOT_SERVING once draining begins."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.core.config import Settings
from services.thumbnailer.app import serve as serve_thumbnailer
from services.upload.app import serve as serve_upload
from tests.support.outages import (
    NOT_SERVING,
    SERVING,
    grpc_health,
    http_status,
    own_database,
    until,
    with_database,
)
from tests.support.ports import free_address
from tests.support.services import running_upload, serving, start_notifier


def fresh_addresses(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        upload_addr=free_address(),
        upload_metrics_addr=free_address(),
        thumbnailer_metrics_addr=free_address(),
    )


async def test_upload_health_follows_its_database(settings: Settings, pool: asyncpg.Pool) -> None:
    async with own_database(pool, settings) as database:
        own = with_database(settings, database, namespace=f"{settings.namespace}-ready-up")
        async with running_upload(fresh_addresses(own)) as svc:
            address = svc.settings.upload_addr
            await until(lambda: grpc_health(address), SERVING)
            await database.refuse_connections()
            await until(lambda: grpc_health(address), NOT_SERVING)
            await database.allow_connections()
            await until(lambda: grpc_health(address), SERVING)


async def test_notifier_health_follows_its_database(settings: Settings, pool: asyncpg.Pool) -> None:
    async with own_database(pool, settings) as database:
        own = with_database(settings, database, namespace=f"{settings.namespace}-ready-no")
        notifier = await start_notifier(own)
        try:
            address = notifier.settings.notifier_addr
            await database.refuse_connections()
            await until(lambda: grpc_health(address), NOT_SERVING)
            await database.allow_connections()
            await until(lambda: grpc_health(address), SERVING)
        finally:
            await notifier.close()


async def test_thumbnailer_healthz_follows_its_database(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    async with own_database(pool, settings) as database:
        own = with_database(
            settings,
            database,
            namespace=f"{settings.namespace}-ready-th",
        )
        own = fresh_addresses(own)
        healthz = f"http://{own.thumbnailer_metrics_addr}/healthz"
        async with serving(serve_thumbnailer, own):
            await until(lambda: http_status(healthz), 200)
            await database.refuse_connections()
            await until(lambda: http_status(healthz), 503)
            await database.allow_connections()
            await until(lambda: http_status(healthz), 200)


async def test_upload_is_not_serving_as_soon_as_it_drains(settings: Settings) -> None:
    """A watcher of the health service hears NOT_SERVING before the server goes away."""
    own = fresh_addresses(settings)
    stop = asyncio.Event()
    async with (
        serving(serve_upload, own, stop),
        grpc.aio.insecure_channel(own.upload_addr) as channel,
    ):
        await until(lambda: grpc_health(own.upload_addr), SERVING)
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == SERVING
        stop.set()
        assert (await asyncio.wait_for(watch.read(), 10)).status == NOT_SERVING
        watch.cancel()


async def test_notifier_is_not_serving_as_soon_as_it_drains(settings: Settings) -> None:
    notifier = await start_notifier(settings)
    async with grpc.aio.insecure_channel(notifier.settings.notifier_addr) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest())
        assert (await watch.read()).status == SERVING
        notifier.stop.set()
        assert (await asyncio.wait_for(watch.read(), 10)).status == NOT_SERVING
        watch.cancel()
    await asyncio.wait_for(notifier.task, 30)
