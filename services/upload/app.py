"""The upload service process: PhotoService on gRPC, the outbox relay that publishes the jobs
and events it records, its readiness probe, and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from aio_pika.abc import AbstractRobustConnection
from thumbwire.v1 import photos_pb2, photos_pb2_grpc

from services.core import broker, database
from services.core.auth import TokenAuthority
from services.core.config import Settings
from services.core.grpc_server import GrpcServer
from services.core.lifecycle import background
from services.core.metrics_http import start_metrics_server
from services.core.outbox import OutboxRelay
from services.core.readiness import Readiness, start_readiness
from services.core.storage import ObjectStore
from services.core.topology import Topology, declare_topology
from services.upload.catalogue import Catalogue
from services.upload.grpc_service import PhotoServicer
from services.upload.metrics import UploadMetrics
from services.upload.photo_service import PhotoService, UploadLimits

log = logging.getLogger(__name__)
SERVICE_NAME = photos_pb2.DESCRIPTOR.services_by_name["PhotoService"].full_name
STOP_GRACE_S = 10.0


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    tokens = TokenAuthority.from_settings(settings)  # first: no secret, no start
    await database.prepare(settings.database_url)
    async with contextlib.AsyncExitStack() as resources:
        # Closed in the reverse order: the server drains while the relay, the pool and the
        # broker connection are still there.
        pool, connection = await start_recording(settings, resources, "thumbwire-upload")

        metrics = UploadMetrics()
        metrics_server = await start_metrics_server(metrics.registry, settings.upload_metrics_addr)
        resources.push_async_callback(metrics_server.cleanup)

        readiness = await start_readiness(
            pool, connection, settings.readiness_interval_s, resources
        )

        store = ObjectStore.from_settings(settings)
        resources.push_async_callback(store.close)  # after the server has drained its calls
        service = PhotoService(
            Catalogue(pool), store, UploadLimits(settings.max_upload_bytes, settings.max_pixels)
        )
        server = photo_grpc_server(
            settings, tokens, PhotoServicer(service, settings.public_base_url, metrics), readiness
        )
        await server.start()
        resources.push_async_callback(server.stop, STOP_GRACE_S)
        # Runs first on exit: NOT_SERVING before the server stops taking calls.
        resources.push_async_callback(readiness.drain)
        log.info(
            "PhotoService listening on %s, metrics on http://%s/metrics",
            settings.upload_addr,
            settings.upload_metrics_addr,
        )
        await stop.wait()
        log.info("stopping: draining calls for up to %.0fs", STOP_GRACE_S)


async def start_recording(
    settings: Settings, resources: contextlib.AsyncExitStack, name: str
) -> tuple[asyncpg.Pool, AbstractRobustConnection]:
    """The database pool and broker connection that PhotoService records through, and the
    outbox relay that publishes what it records; `resources` closes them in reverse order."""
    pool = await database.create_pool(settings.database_url, application_name=name)
    resources.push_async_callback(pool.close)
    connection = await broker.connect(settings.amqp_url, name)
    resources.push_async_callback(connection.close)
    channel = await connection.channel(on_return_raises=True)
    exchanges = await declare_topology(channel, Topology.from_settings(settings))
    relay = OutboxRelay(pool, exchanges, settings.outbox_poll_interval_s)
    background(resources, relay.run(), "outbox-relay")
    return pool, connection


def photo_grpc_server(
    settings: Settings,
    tokens: TokenAuthority,
    servicer: PhotoServicer,
    readiness: Readiness | None = None,
) -> GrpcServer:
    return GrpcServer(
        settings.upload_addr,
        [lambda server: photos_pb2_grpc.add_PhotoServiceServicer_to_server(servicer, server)],
        [SERVICE_NAME],
        tokens,
        readiness,
    )
