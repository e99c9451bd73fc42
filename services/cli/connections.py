"""The direct connections of the operator commands (`dlq`, `backfill`), which work on the
database and the broker rather than through the services' APIs."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from aio_pika.abc import AbstractRobustConnection

from services.core import broker, database
from services.core.config import Settings
from services.core.outbox import OutboxRelay
from services.core.topology import Topology, declare_topology


@dataclass
class Connections:
    amqp: AbstractRobustConnection
    pool: asyncpg.Pool
    topology: Topology


@contextlib.asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[Connections]:
    amqp = await broker.connect(settings.amqp_url, "thumbwire-cli")
    try:
        pool = await database.create_pool(settings.database_url, 2, "thumbwire-cli")
        try:
            yield Connections(amqp, pool, Topology.from_settings(settings))
        finally:
            await pool.close()
    finally:
        await amqp.close()


async def publish_outbox(conns: Connections) -> int:
    """Publishes what the outbox holds now (the jobs a command just queued), rather than wait
    for a service's relay: the command's work is done even with no service running."""
    channel = await conns.amqp.channel(on_return_raises=True)
    try:
        exchanges = await declare_topology(channel, conns.topology)
        return await OutboxRelay(conns.pool, exchanges).drain()
    finally:
        await channel.close()
