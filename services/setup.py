"""`python -m services.setup`: creates what the services expect to exist (the database and its
schema, the broker's exchanges and queues, the bucket). Idempotent; the compose stack runs it
as a one-shot job, `make run` before starting the services."""

from __future__ import annotations

import asyncio
import logging

from services.core import broker, database
from services.core.config import Settings
from services.core.lifecycle import setup_logging
from services.core.storage import ObjectStore
from services.core.topology import Topology, declare_topology

log = logging.getLogger("setup")


async def prepare(settings: Settings) -> None:
    await database.prepare(settings.database_url)
    connection = await broker.connect(settings.amqp_url, "thumbwire-setup")
    try:
        await declare_topology(await connection.channel(), Topology.from_settings(settings))
    finally:
        await connection.close()
    await ObjectStore.from_settings(settings).ensure_bucket()
    log.info("database, broker topology (%s.*) and bucket are ready", settings.namespace)


if __name__ == "__main__":
    setup_logging("setup")
    asyncio.run(prepare(Settings.from_env()))
