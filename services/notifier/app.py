"""Wires the notifier: event consumer -> hub -> gRPC Subscribe and the HTTP gateway; the gateway's
REST facade calls the upload service at THUMBWIRE_UPLOAD_ADDR."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.core import broker, database
from services.core.auth import TokenAuthority
from services.core.config import Settings
from services.core.grpc_server import GrpcServer
from services.core.http_server import start_http
from services.core.lifecycle import cancel_and_wait
from services.core.readiness import Readiness, start_readiness
from services.core.retention import EventPruner
from services.core.storage import ObjectStore
from services.core.topology import Topology
from services.notifier.consumer import EventConsumer, new_instance_id
from services.notifier.gateway import GatewayDeps, create_app
from services.notifier.grpc_service import SERVICE_NAME, NotifierService
from services.notifier.hub import Hub
from services.notifier.upload_client import UploadClient

log = logging.getLogger(__name__)

# Streams end before the servers stop (the hub closes them), so these only bound stragglers:
# a replay still paging, or a client too slow to take its last bytes.
GRPC_GRACE_S = 5.0
HTTP_SHUTDOWN_TIMEOUT_S = 5.0


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Runs the notifier until `stop` is set, then ends every stream and closes everything."""
    tokens = TokenAuthority.from_settings(settings)  # first: no secret, no start
    await database.prepare(settings.database_url)
    instance_id = new_instance_id()
    async with contextlib.AsyncExitStack() as resources:
        pool = await database.create_pool(
            settings.database_url, application_name="thumbwire-notifier"
        )
        resources.push_async_callback(pool.close)
        connection = await broker.connect(
            settings.amqp_url, f"thumbwire-notifier {settings.namespace} {instance_id}"
        )
        resources.push_async_callback(connection.close)
        hub = Hub(settings.subscriber_buffer)
        heartbeats = asyncio.create_task(hub.run_heartbeats(settings.sse_heartbeat_s))
        resources.push_async_callback(cancel_and_wait, heartbeats)
        consumer = EventConsumer(connection, Topology.from_settings(settings), hub, instance_id)
        resources.push_async_callback(consumer.close)
        await consumer.start()
        if settings.event_retention_s > 0:
            interval_s = min(3600.0, settings.event_retention_s / 10)
            pruner = EventPruner(pool, settings.event_retention_s, interval_s)
            pruning = asyncio.create_task(pruner.run(), name="event-pruner")
            resources.push_async_callback(cancel_and_wait, pruning)
        photos = await resources.enter_async_context(UploadClient.connect(settings.upload_addr))
        store = ObjectStore.from_settings(settings)
        readiness = await start_readiness(
            pool, connection, settings.readiness_interval_s, resources
        )
        deps = GatewayDeps(settings, pool, store, hub, tokens, photos, readiness=readiness)
        await start_gateway(deps, resources)
        await start_grpc(deps, resources, readiness)
        # Runs first on exit: streams end cleanly (OK status, end of SSE body) before the
        # servers stop, and a Subscribe that arrives in between ends at once.
        resources.callback(hub.close)
        # First of all: gRPC health NOT_SERVING, the gateway's /healthz 503.
        resources.push_async_callback(readiness.drain)
        log.info(
            "notifier %s: gRPC on %s, HTTP on %s",
            instance_id,
            settings.notifier_addr,
            settings.gateway_addr,
        )
        await stop.wait()
        log.info("notifier %s stopping", instance_id)


async def start_grpc(
    deps: GatewayDeps, resources: contextlib.AsyncExitStack, readiness: Readiness | None = None
) -> GrpcServer:
    settings = deps.settings
    service = NotifierService(
        deps.pool, deps.hub, settings.public_base_url, settings.stream_write_timeout_s, deps.metrics
    )
    server = GrpcServer(
        settings.notifier_addr, [service.add_to], [SERVICE_NAME], deps.tokens, readiness
    )
    await server.start()
    resources.push_async_callback(server.stop, GRPC_GRACE_S)
    return server


async def start_gateway(deps: GatewayDeps, resources: contextlib.AsyncExitStack) -> None:
    runner = await start_http(create_app(deps), deps.settings.gateway_addr, HTTP_SHUTDOWN_TIMEOUT_S)
    resources.push_async_callback(runner.cleanup)
