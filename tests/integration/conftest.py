"""Fixtures of the integration tests: the thumbnailer's parts wired as the service wires them,
in the test process, and the upload service and the notifier side by side (for the tests of
the workspace walls)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aio_pika.abc import AbstractExchange, AbstractRobustConnection

from services.core.config import Settings
from services.core.lifecycle import cancel_and_wait
from services.core.outbox import OutboxRelay
from services.core.storage import ObjectStore
from services.core.topology import Topology, declare_topology
from services.thumbnailer.consumer import JobConsumer
from services.thumbnailer.direct_publish import ExchangeJobPublisher
from services.thumbnailer.metrics import ThumbnailerMetrics
from services.thumbnailer.rendering import ImageLimits, RenderPool
from tests.support.ports import free_address
from tests.support.services import RunningNotifier, UploadService, running_upload, start_notifier
from tests.support.thumbnailing import RecordingProcessor, Thumbnailer


@pytest.fixture(scope="module")
async def renderer(settings: Settings) -> AsyncIterator[RenderPool]:
    render_pool = RenderPool(2, ImageLimits.from_settings(settings))
    yield render_pool
    await render_pool.close()


@pytest.fixture
async def relay(pool: asyncpg.Pool, exchanges: dict[str, AbstractExchange]) -> AsyncIterator[None]:
    """Publishes the outbox (the seeded jobs, the thumbnailer's events) while a test runs."""
    relay_task = asyncio.create_task(OutboxRelay(pool, exchanges, 0.2).run())
    yield
    await cancel_and_wait(relay_task)


async def start_thumbnailer(
    pool: asyncpg.Pool,
    store: ObjectStore,
    amqp: AbstractRobustConnection,
    topology: Topology,
    renderer: RenderPool,
    exchanges: dict[str, AbstractExchange],
) -> tuple[Thumbnailer, JobConsumer]:
    metrics = ThumbnailerMetrics()
    publisher = ExchangeJobPublisher(exchanges["jobs"])
    processor = RecordingProcessor(pool, store, renderer, topology.retry, publisher)
    consumer = JobConsumer(amqp, topology.jobs_queue, processor, metrics, 2, requeue_delay_s=0.1)
    await consumer.start()
    return Thumbnailer(processor, metrics), consumer


@pytest.fixture
async def thumbnailer(
    pool: asyncpg.Pool,
    store: ObjectStore,
    amqp: AbstractRobustConnection,
    topology: Topology,
    renderer: RenderPool,
    exchanges: dict[str, AbstractExchange],
    relay: None,
) -> AsyncIterator[Thumbnailer]:
    """The consumer and an outbox relay, as the service wires them, on the test run's names."""
    running, consumer = await start_thumbnailer(pool, store, amqp, topology, renderer, exchanges)
    yield running
    await consumer.stop(grace_s=5)


@dataclasses.dataclass
class Services:
    upload: UploadService
    notifier: RunningNotifier
    # Publishes the events that tests write straight to the database (events_seed).
    relay: OutboxRelay

    @property
    def settings(self) -> Settings:
        return self.notifier.settings


@pytest.fixture(scope="module")
async def services(
    settings: Settings, pool: asyncpg.Pool, store: ObjectStore, amqp: AbstractRobustConnection
) -> AsyncIterator[Services]:
    """Both services on one namespace of their own: no other test's consumer takes the upload
    service's jobs, and whichever relay publishes an event (the upload service's, woken by
    every outbox write in the database, or the tests'), it reaches this notifier."""
    own = dataclasses.replace(
        settings, namespace=f"{settings.namespace}-walls", upload_addr=free_address()
    )
    channel = await amqp.channel()
    exchanges = await declare_topology(channel, Topology.from_settings(own))
    notifier = await start_notifier(own)
    try:
        async with running_upload(own) as upload:
            yield Services(upload, notifier, OutboxRelay(pool, exchanges))
    finally:
        await notifier.close()
        await channel.close()
