"""The retry ladder against the real broker, database and S3 server: transient failures wait in
the TTL queues and come back, permanent ones and the last attempt park the job, and nothing is
lost when the database itself is what fails."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aio_pika
import asyncpg
import pytest
from aio_pika.abc import AbstractExchange, AbstractRobustConnection

from services.core import database
from services.core.config import Settings
from services.core.events import EventType
from services.core.jobs import ATTEMPT_HEADER, ERROR_HEADER, JobHistory, ThumbnailJob
from services.core.photos import PhotoRecord, ThumbnailStatus
from services.core.storage import ObjectStore
from services.core.topology import Topology
from services.thumbnailer.direct_publish import ExchangeJobPublisher
from services.thumbnailer.processing import Outcome, ThumbnailProcessor
from services.thumbnailer.rendering import RenderPool
from tests.integration.conftest import start_thumbnailer
from tests.support.images import jpeg
from tests.support.seed import seed_photo, set_thumbnail_state
from tests.support.tcp_proxy import TcpProxy
from tests.support.thumbnailing import Thumbnailer, photo_events, wait_for_status, wait_until


@pytest.fixture
def s3_proxy(settings: Settings) -> Iterator[TcpProxy]:
    assert settings.s3_endpoint is not None
    proxy = TcpProxy.in_front_of(settings.s3_endpoint)
    yield proxy
    proxy.stop()


@pytest.fixture
def pg_proxy(settings: Settings) -> Iterator[TcpProxy]:
    proxy = TcpProxy.in_front_of(settings.database_url)
    yield proxy
    proxy.stop()


@pytest.fixture
async def proxied_pool(settings: Settings, pg_proxy: TcpProxy) -> AsyncIterator[asyncpg.Pool]:
    """The test's database, reached only through `pg_proxy`."""
    pool = await database.create_pool(pg_proxy.url_through(settings.database_url), 2)
    yield pool
    await pool.close()


@pytest.fixture
def processor_on_proxy(
    proxied_pool: asyncpg.Pool,
    store: ObjectStore,
    renderer: RenderPool,
    exchanges: dict[str, AbstractExchange],
    topology: Topology,
) -> Callable[..., ThumbnailProcessor]:
    """Processors whose database is reached only through `pg_proxy`; keywords as
    ThumbnailProcessor's."""
    publisher = ExchangeJobPublisher(exchanges["jobs"])

    def make(**options: Any) -> ThumbnailProcessor:
        return ThumbnailProcessor(
            proxied_pool, store, renderer, topology.retry, publisher, **options
        )

    return make


@pytest.fixture
async def cut_off_thumbnailer(
    settings: Settings,
    pool: asyncpg.Pool,
    amqp: AbstractRobustConnection,
    topology: Topology,
    renderer: RenderPool,
    exchanges: dict[str, AbstractExchange],
    relay: None,
    s3_proxy: TcpProxy,
) -> AsyncIterator[Thumbnailer]:
    """A thumbnailer that reaches object storage only through the test's proxy."""
    proxied = dataclasses.replace(settings, s3_endpoint=s3_proxy.url_through(settings.s3_endpoint))
    store = ObjectStore.from_settings(proxied)
    running, consumer = await start_thumbnailer(pool, store, amqp, topology, renderer, exchanges)
    yield running
    await consumer.stop(grace_s=5)


def event_types(events: list) -> list[EventType]:
    return [e.type for e in events]


async def test_the_retry_queues_hold_jobs_their_delay_then_dead_letter_them_back(
    topology: Topology, exchanges: dict[str, AbstractExchange]
) -> None:
    declared = {q["name"]: {k: v for k, _type, v in q["arguments"]} for q in _queues()}
    assert topology.retry.delays_ms() == [100, 200, 400, 800]
    for delay_ms in topology.retry.delays_ms():
        arguments = declared[topology.retry_queue(delay_ms)]
        assert arguments["x-queue-type"] == "quorum"
        assert arguments["x-message-ttl"] == delay_ms
        assert arguments["x-dead-letter-exchange"] == topology.jobs_exchange
        assert arguments["x-dead-letter-routing-key"] == "thumbnail"
        assert arguments["x-dead-letter-strategy"] == "at-least-once"
        assert arguments["x-overflow"] == "reject-publish"
    assert declared[topology.parked_queue]["x-queue-type"] == "quorum"


def _queues() -> list[dict]:
    result = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "arguments", "--formatter", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)


async def test_storage_cut_off_for_a_while_retries_with_growing_delays_then_completes(
    pool: asyncpg.Pool,
    store: ObjectStore,
    s3_proxy: TcpProxy,
    cut_off_thumbnailer: Thumbnailer,
) -> None:
    s3_proxy.cut()
    photo = await seed_photo(pool, store, jpeg(640, 480))

    async def retried_twice() -> bool:
        return event_types(await photo_events(pool, photo)).count(EventType.RETRYING) >= 2

    await wait_until(retried_twice)
    s3_proxy.restore()
    done = await wait_for_status(pool, photo)

    assert done.thumbnail_status == ThumbnailStatus.COMPLETE, done.thumbnail_error
    assert done.thumbnail_error == ""
    events = await photo_events(pool, photo)
    retries = [e for e in events if e.type == EventType.RETRYING]
    attempts = len(retries) + 1
    assert done.thumbnail_attempts == attempts
    assert event_types(events) == [
        EventType.UPLOADED,
        *[EventType.PROCESSING, EventType.RETRYING] * len(retries),
        EventType.PROCESSING,
        EventType.READY,
    ]
    assert [e.retry_delay_ms for e in retries] == [100 * 2**n for n in range(len(retries))]
    assert [e.attempt for e in retries] == list(range(1, attempts))
    assert all("storage" in e.error for e in retries)
    _assert_each_retry_waited_its_delay(events)


def _assert_each_retry_waited_its_delay(events: list) -> None:
    """A retry's next attempt starts no sooner than the delay its queue holds it."""
    for retry, following in itertools.pairwise(events):
        if retry.type == EventType.RETRYING:
            waited_ms = (following.occurred_at - retry.occurred_at).total_seconds() * 1000
            assert waited_ms >= retry.retry_delay_ms * 0.9, (retry, following)


async def test_storage_cut_off_for_good_fails_after_the_last_attempt_and_parks_the_job(
    pool: asyncpg.Pool,
    store: ObjectStore,
    amqp: AbstractRobustConnection,
    topology: Topology,
    s3_proxy: TcpProxy,
    cut_off_thumbnailer: Thumbnailer,
) -> None:
    s3_proxy.cut()
    photo = await seed_photo(pool, store, jpeg(640, 480))
    done = await wait_for_status(pool, photo)

    assert done.thumbnail_status == ThumbnailStatus.FAILED
    assert done.thumbnail_attempts == 5
    assert "storage" in done.thumbnail_error
    events = await photo_events(pool, photo)
    assert event_types(events) == [
        EventType.UPLOADED,
        *[EventType.PROCESSING, EventType.RETRYING] * 4,
        EventType.PROCESSING,
        EventType.FAILED,
    ]
    assert [e.retry_delay_ms for e in events if e.type == EventType.RETRYING] == [
        100,
        200,
        400,
        800,
    ]
    assert events[-1].error == done.thumbnail_error
    assert await cut_off_thumbnailer.outcomes(photo, 5) == [Outcome.RETRYING] * 4 + [Outcome.FAILED]

    parked = await _parked_headers(amqp, topology, photo)
    assert parked[ATTEMPT_HEADER] == 5 and parked[ERROR_HEADER] == done.thumbnail_error


async def _parked_headers(
    amqp: AbstractRobustConnection, topology: Topology, photo: PhotoRecord
) -> dict:
    """The headers of the photo's job in the parking queue, which is left as it was."""
    channel = await amqp.channel()
    try:
        queue = await channel.declare_queue(topology.parked_queue, passive=True)

        async def parked_message() -> aio_pika.abc.AbstractIncomingMessage | None:
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                if ThumbnailJob.from_body(message.body).photo_id == photo.id:
                    return message
            return None

        found: list = []

        async def arrived() -> bool:
            message = await parked_message()
            if message is not None:
                found.append(message)
            return bool(found)

        await wait_until(arrived)
        return dict(found[0].headers)
    finally:
        await channel.close()  # hands every message it took back to the queue


async def test_a_permanent_failure_fails_on_the_first_attempt_and_parks_the_job(
    pool: asyncpg.Pool,
    store: ObjectStore,
    amqp: AbstractRobustConnection,
    topology: Topology,
    thumbnailer: Thumbnailer,
) -> None:
    data = jpeg(400, 300)
    photo = await seed_photo(pool, store, data[: len(data) // 2])
    done = await wait_for_status(pool, photo)

    assert done.thumbnail_status == ThumbnailStatus.FAILED
    assert done.thumbnail_attempts == 1
    assert event_types(await photo_events(pool, photo)) == [
        EventType.UPLOADED,
        EventType.PROCESSING,
        EventType.FAILED,
    ]
    parked = await _parked_headers(amqp, topology, photo)
    assert parked[ATTEMPT_HEADER] == 1 and "could not be decoded" in parked[ERROR_HEADER]


async def test_a_database_outage_spends_no_attempt_the_job_waits_for_it(
    pool: asyncpg.Pool,
    store: ObjectStore,
    pg_proxy: TcpProxy,
    processor_on_proxy: Callable[..., ThumbnailProcessor],
) -> None:
    """Cut off for longer than the whole ladder (1.5 s here), the job neither fails nor
    counts an attempt: it holds its delivery and goes on once the database is back."""
    photo = await seed_photo(pool, store, jpeg(300, 200), enqueue=False)
    cut_off = processor_on_proxy()

    pg_proxy.cut()
    job = ThumbnailJob(photo.workspace_id, photo.id)
    attempt = asyncio.create_task(cut_off.process(job, JobHistory(1)))
    await asyncio.sleep(3.0)
    assert not attempt.done()
    pg_proxy.restore()

    assert await asyncio.wait_for(attempt, 20) == Outcome.COMPLETED
    done = await wait_for_status(pool, photo)
    assert done.thumbnail_status == ThumbnailStatus.COMPLETE
    assert done.thumbnail_attempts == 1
    assert EventType.RETRYING not in event_types(await photo_events(pool, photo))


async def test_a_database_out_of_reach_past_the_wait_sends_the_job_up_the_ladder_directly(
    pool: asyncpg.Pool,
    store: ObjectStore,
    pg_proxy: TcpProxy,
    processor_on_proxy: Callable[..., ThumbnailProcessor],
    thumbnailer: Thumbnailer,
) -> None:
    """A worker whose database stays gone past its wait can record neither the attempt nor
    the retry: it publishes attempt 2 to the retry queue itself, and the job is not lost."""
    photo = await seed_photo(pool, store, jpeg(300, 200), enqueue=False)
    cut_off = processor_on_proxy(database_wait_s=1.0)

    pg_proxy.cut()
    started = time.monotonic()
    job = ThumbnailJob(photo.workspace_id, photo.id)
    assert await cut_off.process(job, JobHistory(1)) == Outcome.RETRYING
    assert 1.0 <= time.monotonic() - started < 5

    done = await wait_for_status(pool, photo)  # the healthy thumbnailer takes attempt 2
    assert done.thumbnail_status == ThumbnailStatus.COMPLETE
    assert done.thumbnail_attempts == 2
    assert await thumbnailer.outcomes(done) == [Outcome.COMPLETED]


async def test_a_delivery_after_the_last_attempt_never_finished_fails_the_photo(
    pool: asyncpg.Pool, store: ObjectStore, renderer: RenderPool, topology: Topology
) -> None:
    """A job redelivered after its worker died in the last attempt is not tried a sixth time."""
    photo = await seed_photo(pool, store, jpeg(300, 200), enqueue=False)
    await set_thumbnail_state(pool, photo.id, "processing", 5)
    processor = ThumbnailProcessor(pool, store, renderer, topology.retry)

    job = ThumbnailJob(photo.workspace_id, photo.id)
    assert await processor.process(job, JobHistory(5)) == Outcome.FAILED

    done = await wait_for_status(pool, photo)
    assert done.thumbnail_status == ThumbnailStatus.FAILED
    assert done.thumbnail_attempts == 5
    assert done.thumbnail_error == "gave up after 5 attempts: the last one never finished"
    assert event_types(await photo_events(pool, photo)) == [EventType.UPLOADED, EventType.FAILED]
