"""Broker names, all under THUMBWIRE_NAMESPACE, and their declaration."""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

JOB_ROUTING_KEY = "thumbnail"
QUORUM = {"x-queue-type": "quorum"}


@dataclass(frozen=True)
class Topology:
    namespace: str

    @property
    def jobs_exchange(self) -> str:
        return f"{self.namespace}.jobs"

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def jobs_queue(self) -> str:
        return f"{self.namespace}.thumbnail.jobs"

    def notifier_queue(self, instance_id: str) -> str:
        return f"{self.namespace}.notifier.{instance_id}"

    def exchange_name(self, logical: str) -> str:
        """'jobs' or 'events', as stored in the outbox, to the namespaced exchange name."""
        return {"jobs": self.jobs_exchange, "events": self.events_exchange}[logical]


async def declare_exchanges(
    channel: AbstractChannel, topo: Topology
) -> dict[str, AbstractExchange]:
    """Declares both exchanges; returns them by their outbox name ('jobs', 'events')."""
    jobs = await channel.declare_exchange(
        topo.jobs_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )
    events = await channel.declare_exchange(
        topo.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    return {"jobs": jobs, "events": events}


async def declare_topology(channel: AbstractChannel, topo: Topology) -> dict[str, AbstractExchange]:
    """Declares the exchanges and the durable queues the pipeline needs; idempotent."""
    exchanges = await declare_exchanges(channel, topo)
    jobs_queue = await channel.declare_queue(topo.jobs_queue, durable=True, arguments=QUORUM)
    await jobs_queue.bind(exchanges["jobs"], routing_key=JOB_ROUTING_KEY)
    return exchanges
