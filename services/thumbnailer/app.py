"""The thumbnailer process: wires the parts and shuts them down in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from aio_pika.abc import AbstractRobustConnection

from services.core import broker, database
from services.core.config import Settings
from services.core.lifecycle import background, cancel_and_wait
from services.core.outbox import OutboxRelay
from services.core.readiness import Readiness, start_readiness
from services.core.storage import ObjectStore
from services.core.topology import Topology, declare_topology
from services.thumbnailer.backlog import BacklogGauges
from services.thumbnailer.consumer import JobConsumer
from services.thumbnailer.direct_publish import ExchangeJobPublisher
from services.thumbnailer.metrics import ThumbnailerMetrics
from services.thumbnailer.processing import ThumbnailProcessor
from services.thumbnailer.rendering import ImageLimits, RenderPool
from services.thumbnailer.status_server import StatusServer
from services.thumbnailer.sweeper import Sweeper

log = logging.getLogger(__name__)

# How long running jobs may take to finish after a stop; the rest go back to the queue.
SHUTDOWN_GRACE_S = 15.0
# Jobs taken at once per image worker. With one, a worker idles while its job fetches the
# original, stores the thumbnails and commits (about a third of the time on a 12 MP JPEG,
# docs/benchmarks.md, "Pipeline throughput"); with two, the next job's claim and fetch and the
# last one's store and commit happen while the worker renders.
JOBS_PER_WORKER = 2


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Runs until `stop` is set, or until the outbox relay dies (then raises its error)."""
    await database.prepare(settings.database_url)
    async with contextlib.AsyncExitStack() as stack:
        # Each part is closed in the reverse order of its start: the consumer first, so that
        # jobs finish while the relay, the pools and the connections are still there.
        pool = await database.create_pool(
            settings.database_url,
            settings.concurrency * JOBS_PER_WORKER + 3,
            "thumbwire-thumbnailer",
        )
        stack.push_async_callback(pool.close)
        connection = await broker.connect(settings.amqp_url, "thumbnailer")
        stack.push_async_callback(connection.close)
        publish_channel = await connection.channel(on_return_raises=True)
        topology = Topology.from_settings(settings)
        exchanges = await declare_topology(publish_channel, topology)
        renderer = RenderPool(settings.concurrency, ImageLimits.from_settings(settings))
        stack.push_async_callback(renderer.close)

        metrics = ThumbnailerMetrics()
        readiness = await start_status(settings, pool, connection, metrics, stack)
        relay = OutboxRelay(pool, exchanges, settings.outbox_poll_interval_s)
        relay_task = background(stack, relay.run(), "outbox-relay")
        sweeper = Sweeper(
            pool, settings.sweep_age_s, settings.sweep_interval_s, on_swept=metrics.swept.inc
        )
        background(stack, sweeper.run(), "sweeper")

        store = ObjectStore.from_settings(settings)
        stack.push_async_callback(store.close)
        processor = ThumbnailProcessor(
            pool,
            store,
            renderer,
            topology.retry,
            ExchangeJobPublisher(exchanges["jobs"]),
            on_rendered=metrics.rendered,
        )
        consumer = JobConsumer(
            connection,
            topology.jobs_queue,
            processor,
            metrics,
            prefetch=settings.concurrency * JOBS_PER_WORKER,
        )
        await consumer.start()
        stack.push_async_callback(consumer.stop, SHUTDOWN_GRACE_S)
        stack.push_async_callback(readiness.drain)  # first on exit: /healthz turns 503
        log.info("thumbnailer ready: metrics on http://%s", settings.thumbnailer_metrics_addr)
        await wait_for_stop(stop, relay_task)
    log.info("thumbnailer stopped")


async def start_status(
    settings: Settings,
    pool: asyncpg.Pool,
    connection: AbstractRobustConnection,
    metrics: ThumbnailerMetrics,
    stack: contextlib.AsyncExitStack,
) -> Readiness:
    """The readiness probe, the backlog gauges and the HTTP server that shows them."""
    readiness = await start_readiness(pool, connection, settings.readiness_interval_s, stack)
    parked_queue = Topology.from_settings(settings).parked_queue
    backlog = BacklogGauges(pool, connection, parked_queue, metrics, settings.readiness_interval_s)
    stack.push_async_callback(backlog.close)  # after the task below is cancelled
    background(stack, backlog.run(), "backlog-gauges")
    status = StatusServer(settings.thumbnailer_metrics_addr, metrics, readiness)
    await status.start()
    stack.push_async_callback(status.stop)
    return readiness


async def wait_for_stop(stop: asyncio.Event, relay_task: asyncio.Task[None]) -> None:
    """Returns when `stop` is set; raises if the relay ended first, which it only does on an
    error it does not expect: the process exits and its supervisor restarts it."""
    stop_task = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait({stop_task, relay_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(stop_task)
    if relay_task.done() and not stop.is_set():
        relay_task.result()  # raises the relay's error
        raise RuntimeError("the outbox relay stopped by itself")
