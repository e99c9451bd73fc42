"""The upload service process: PhotoService on gRPC, and the outbox relay that publishes the
jobs and events it records."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from thumbwire.v1 import photos_pb2, photos_pb2_grpc

from services.core import broker, database
from services.core.auth import TokenAuthority
from services.core.config import Settings
from services.core.grpc_server import GrpcServer
from services.core.outbox import OutboxRelay
from services.core.storage import ObjectStore
from services.core.topology import Topology, declare_topology
from services.upload.catalogue import Catalogue
from services.upload.grpc_service import PhotoServicer
from services.upload.photo_service import PhotoService, UploadLimits

log = logging.getLogger(__name__)
SERVICE_NAME = photos_pb2.DESCRIPTOR.services_by_name["PhotoService"].full_name
STOP_GRACE_S = 10.0


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    tokens = TokenAuthority.from_settings(settings)  # first: no secret, no start
    await database.prepare(settings.database_url)
    pool = await database.create_pool(settings.database_url, application_name="thumbwire-upload")
    connection = await broker.connect(settings.amqp_url, "thumbwire-upload")
    try:
        channel = await connection.channel(on_return_raises=True)
        exchanges = await declare_topology(channel, Topology.from_settings(settings))
        relay = OutboxRelay(pool, exchanges, settings.outbox_poll_interval_s)
        server = _grpc_server(
            settings,
            tokens,
            PhotoService(
                Catalogue(pool),
                ObjectStore.from_settings(settings),
                UploadLimits(settings.max_upload_bytes, settings.max_pixels),
            ),
        )
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        await server.start()
        log.info("PhotoService listening on %s", settings.upload_addr)
        await stop.wait()
        log.info("stopping: draining calls for up to %.0fs", STOP_GRACE_S)
        await server.stop(STOP_GRACE_S)
        relay_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay_task
    finally:
        await connection.close()
        await pool.close()


def _grpc_server(settings: Settings, tokens: TokenAuthority, service: PhotoService) -> GrpcServer:
    servicer = PhotoServicer(service, settings.public_base_url)
    return GrpcServer(
        settings.upload_addr,
        [lambda server: photos_pb2_grpc.add_PhotoServiceServicer_to_server(servicer, server)],
        [SERVICE_NAME],
        tokens,
    )
