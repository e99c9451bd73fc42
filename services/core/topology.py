"""Broker names, all under THUMBWIRE_NAMESPACE, and their declaration.

<ns>.jobs (direct) --"thumbnail"------> <ns>.thumbnail.jobs          (the thumbnailers)
                   --"retry.<d>ms"----> <ns>.thumbnail.retry.<d>ms   (TTL d, dead-letters
                                                                      back as "thumbnail")
                   --"parked"---------> <ns>.thumbnail.parked        (given up: `thumbwire dlq`)
<ns>.events (topic) --"photo.*"-------> one queue per notifier
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from services.core.config import Settings
from services.core.retry import RetryPolicy

JOB_ROUTING_KEY = "thumbnail"
PARKED_ROUTING_KEY = "parked"
QUORUM = {"x-queue-type": "quorum"}


def retry_routing_key(delay_ms: int) -> str:
    """The jobs exchange's key for the retry queue of `delay_ms`; namespace-free, so that an
    outbox row means the same thing to every stack."""
    return f"retry.{delay_ms}ms"


@dataclass(frozen=True)
class Topology:
    namespace: str
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        return cls(settings.namespace, RetryPolicy(settings.retry_base_ms, settings.max_attempts))

    @property
    def jobs_exchange(self) -> str:
        return f"{self.namespace}.jobs"

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def jobs_queue(self) -> str:
        return f"{self.namespace}.thumbnail.jobs"

    @property
    def parked_queue(self) -> str:
        return f"{self.namespace}.thumbnail.parked"

    def retry_queue(self, delay_ms: int) -> str:
        # The delay is in the name: another base delay declares new queues instead of
        # failing to redeclare the old ones with other arguments.
        return f"{self.namespace}.thumbnail.retry.{delay_ms}ms"

    def notifier_queue(self, instance_id: str) -> str:
        return f"{self.namespace}.notifier.{instance_id}"

    def retry_queue_arguments(self, delay_ms: int) -> dict[str, Any]:
        """A quorum queue that holds each job `delay_ms`, then dead-letters it back to the jobs
        queue. At-least-once dead-lettering (which needs reject-publish) keeps a job that is
        due while the jobs queue is unavailable, where at-most-once would drop it."""
        return {
            **QUORUM,
            "x-message-ttl": delay_ms,
            "x-dead-letter-exchange": self.jobs_exchange,
            "x-dead-letter-routing-key": JOB_ROUTING_KEY,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }


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
    """Declares the exchanges, the jobs queue, the retry ladder and the parking queue;
    idempotent, and safe for every service to run at start."""
    exchanges = await declare_exchanges(channel, topo)
    jobs = exchanges["jobs"]
    await _declare_bound(channel, jobs, topo.jobs_queue, JOB_ROUTING_KEY, QUORUM)
    await _declare_bound(channel, jobs, topo.parked_queue, PARKED_ROUTING_KEY, QUORUM)
    for delay_ms in topo.retry.delays_ms():
        arguments = topo.retry_queue_arguments(delay_ms)
        key = retry_routing_key(delay_ms)
        await _declare_bound(channel, jobs, topo.retry_queue(delay_ms), key, arguments)
    return exchanges


async def _declare_bound(
    channel: AbstractChannel,
    exchange: AbstractExchange,
    name: str,
    routing_key: str,
    arguments: dict[str, Any],
) -> None:
    queue = await channel.declare_queue(name, durable=True, arguments=arguments)
    await queue.bind(exchange, routing_key=routing_key)
