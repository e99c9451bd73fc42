"""The thumbnailer against the real PostgreSQL, RabbitMQ and S3: its consumer in-process, and
the service as a process of its own."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import fields
from pathlib import Path

import aio_pika
import aiohttp
import asyncpg
import pytest
from aio_pika.abc import AbstractExchange, AbstractRobustConnection
from PIL import Image

from services.core.config import Settings
from services.core.events import EventType
from services.core.jobs import ThumbnailJob
from services.core.photos import (
    PhotoRecord,
    ThumbnailSize,
    ThumbnailStatus,
    fetch_photo,
    original_key,
    thumbnail_key,
)
from services.core.storage import ObjectNotFound, ObjectStore
from services.core.topology import Topology
from services.thumbnailer.consumer import JobConsumer
from services.thumbnailer.imaging import Rendition
from services.thumbnailer.metrics import ThumbnailerMetrics
from services.thumbnailer.processing import Outcome, ThumbnailProcessor
from services.thumbnailer.rendering import RenderPool
from tests.support.images import jpeg
from tests.support.seed import delete_photo, enqueue, seed_photo
from tests.support.thumbnailing import (
    WAIT_S,
    Thumbnailer,
    photo_events,
    wait_for_status,
    wait_until,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


async def test_a_photo_gets_three_webp_thumbnails_and_its_events(
    pool: asyncpg.Pool,
    store: ObjectStore,
    amqp: AbstractRobustConnection,
    topology: Topology,
    thumbnailer: Thumbnailer,
) -> None:
    channel = await amqp.channel()
    ready_queue = await channel.declare_queue(exclusive=True)
    await ready_queue.bind(topology.events_exchange, routing_key=str(EventType.READY))

    photo = await seed_photo(pool, store, jpeg(1000, 600))
    done = await wait_for_status(pool, photo)

    assert done.thumbnail_status == ThumbnailStatus.COMPLETE, done.thumbnail_error
    assert done.thumbnail_attempts == 1 and done.thumbnail_error == ""
    expected = {"large": (800, 480), "medium": (400, 240), "small": (150, 90)}
    assert {str(t.size): (t.width, t.height) for t in done.thumbnails} == expected
    for thumb in done.thumbnails:
        key = thumbnail_key(photo.workspace_id, photo.id, thumb.size)
        data = await store.get(key)
        assert len(data) == thumb.size_bytes
        assert (await store.stat(key)).content_type == "image/webp"
        image = Image.open(io.BytesIO(data))
        assert (image.format, image.size) == ("WEBP", (thumb.width, thumb.height))

    events = await photo_events(pool, photo)
    assert [e.type for e in events] == [EventType.UPLOADED, EventType.PROCESSING, EventType.READY]
    assert events[1].photo and events[1].photo.thumbnail_status == ThumbnailStatus.PROCESSING
    assert events[2].photo and len(events[2].photo.thumbnails) == 3

    # The relay published the ready event to the events exchange.
    published = await _next_event_for(ready_queue, photo)
    assert published["id"] == events[2].id and published["type"] == EventType.READY
    assert await thumbnailer.outcomes(photo) == [Outcome.COMPLETED]
    assert thumbnailer.metrics.jobs_with(Outcome.COMPLETED) >= 1
    await channel.close()


async def _next_event_for(queue: aio_pika.abc.AbstractQueue, photo: PhotoRecord) -> dict:
    async with asyncio.timeout(WAIT_S), queue.iterator() as messages:
        async for message in messages:
            await message.ack()
            body = json.loads(message.body)
            if body["photo_id"] == str(photo.id):
                return body
    raise AssertionError("unreachable")


async def test_a_corrupt_original_fails_once_with_its_reason(
    pool: asyncpg.Pool, store: ObjectStore, thumbnailer: Thumbnailer
) -> None:
    data = jpeg(400, 300)
    photo = await seed_photo(pool, store, data[: len(data) * 7 // 10])
    done = await wait_for_status(pool, photo)

    assert done.thumbnail_status == ThumbnailStatus.FAILED
    assert "could not be decoded" in done.thumbnail_error
    assert done.thumbnails == ()
    events = await photo_events(pool, photo)
    assert [e.type for e in events] == [EventType.UPLOADED, EventType.PROCESSING, EventType.FAILED]
    assert events[-1].error == done.thumbnail_error
    assert await thumbnailer.outcomes(photo) == [Outcome.FAILED]


async def test_a_missing_original_fails_the_photo(
    pool: asyncpg.Pool, store: ObjectStore, thumbnailer: Thumbnailer
) -> None:
    photo = await seed_photo(pool, store, jpeg(100, 100), enqueue=False)
    await store.delete_many([original_key(photo.workspace_id, photo.id)])
    await enqueue(pool, photo)
    done = await wait_for_status(pool, photo)

    assert done.thumbnail_status == ThumbnailStatus.FAILED
    assert done.thumbnail_error == "the original is missing from storage"
    failed = [e for e in await photo_events(pool, photo) if e.type == EventType.FAILED]
    assert len(failed) == 1


async def test_a_job_for_a_deleted_photo_is_dropped(
    pool: asyncpg.Pool, store: ObjectStore, thumbnailer: Thumbnailer
) -> None:
    photo = await seed_photo(pool, store, jpeg(200, 100), enqueue=False)
    await delete_photo(pool, photo)
    await enqueue(pool, photo)

    assert await thumbnailer.outcomes(photo) == [Outcome.DROPPED]
    assert [e.type for e in await photo_events(pool, photo)] == [
        EventType.UPLOADED,
        EventType.DELETED,
    ]
    with pytest.raises(ObjectNotFound):
        await store.stat(thumbnail_key(photo.workspace_id, photo.id, ThumbnailSize.SMALL))


async def test_a_duplicate_job_for_a_complete_photo_is_dropped(
    pool: asyncpg.Pool, store: ObjectStore, thumbnailer: Thumbnailer
) -> None:
    photo = await seed_photo(pool, store, jpeg(300, 200))
    first = await wait_for_status(pool, photo)
    assert first.thumbnail_status == ThumbnailStatus.COMPLETE

    await enqueue(pool, photo)

    assert await thumbnailer.outcomes(photo, count=2) == [Outcome.COMPLETED, Outcome.DROPPED]
    again = await fetch_photo(pool, photo.workspace_id, photo.id)
    assert again == first  # not claimed again: same attempts, same updated_at
    ready = [e for e in await photo_events(pool, photo) if e.type == EventType.READY]
    assert len(ready) == 1


async def test_two_deliveries_of_one_job_at_once_make_one_attempt(
    pool: asyncpg.Pool, store: ObjectStore, renderer: RenderPool
) -> None:
    """A job delivered twice to one thumbnailer that takes more jobs than it has image
    workers: the second waits for the first, then finds the photo done."""
    photo = await seed_photo(pool, store, jpeg(300, 200))
    processor = ThumbnailProcessor(pool, store, renderer)
    job = ThumbnailJob(photo.workspace_id, photo.id)
    outcomes = await asyncio.gather(processor.process(job), processor.process(job))
    assert sorted(outcomes) == sorted([Outcome.COMPLETED, Outcome.DROPPED])
    done = await fetch_photo(pool, photo.workspace_id, photo.id)
    assert (done.thumbnail_status, done.thumbnail_attempts) == (ThumbnailStatus.COMPLETE, 1)
    processing = [e for e in await photo_events(pool, photo) if e.type == EventType.PROCESSING]
    assert len(processing) == 1


async def test_a_message_that_is_no_job_is_rejected_and_consuming_goes_on(
    pool: asyncpg.Pool,
    store: ObjectStore,
    exchanges: dict[str, AbstractExchange],
    thumbnailer: Thumbnailer,
) -> None:
    rejected_before = thumbnailer.metrics.jobs_with(Outcome.REJECTED)
    await exchanges["jobs"].publish(aio_pika.Message(b"not json"), routing_key="thumbnail")

    async def rejected() -> bool:
        return thumbnailer.metrics.jobs_with(Outcome.REJECTED) > rejected_before

    await wait_until(rejected)
    photo = await seed_photo(pool, store, jpeg(120, 80))
    assert (await wait_for_status(pool, photo)).thumbnail_status == ThumbnailStatus.COMPLETE


class RacingStore(ObjectStore):
    """The real store; before the first thumbnail is written, it runs `race` (a concurrent
    DeletePhoto, or another delivery finishing first) so that the race happens every time."""

    race: Callable[[], Awaitable[object]] | None = None

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        if self.race is not None and key.endswith(".webp"):
            race, self.race = self.race, None
            await race()
        await super().put(key, data, content_type)


async def _process_with_race(
    settings: Settings,
    pool: asyncpg.Pool,
    renderer: RenderPool,
    photo: PhotoRecord,
    race_sql: str,
) -> Outcome:
    store = RacingStore.from_settings(settings)
    store.race = lambda: pool.execute(race_sql, photo.id)
    processor = ThumbnailProcessor(pool, store, renderer)
    return await processor.process(ThumbnailJob(photo.workspace_id, photo.id))


async def test_thumbnails_of_a_photo_deleted_while_processing_are_removed(
    settings: Settings, pool: asyncpg.Pool, store: ObjectStore, renderer: RenderPool
) -> None:
    photo = await seed_photo(pool, store, jpeg(300, 200), enqueue=False)
    delete = "DELETE FROM photos WHERE id = $1"

    assert await _process_with_race(settings, pool, renderer, photo, delete) == Outcome.DROPPED

    for size in ThumbnailSize:
        with pytest.raises(ObjectNotFound):
            await store.stat(thumbnail_key(photo.workspace_id, photo.id, size))
    types = [e.type for e in await photo_events(pool, photo)]
    assert types == [EventType.UPLOADED, EventType.PROCESSING]


async def test_thumbnails_are_kept_when_another_delivery_finished_first(
    settings: Settings, pool: asyncpg.Pool, store: ObjectStore, renderer: RenderPool
) -> None:
    photo = await seed_photo(pool, store, jpeg(300, 200), enqueue=False)
    finish = "UPDATE photos SET thumbnail_status = 'complete' WHERE id = $1"

    assert await _process_with_race(settings, pool, renderer, photo, finish) == Outcome.DROPPED

    for size in ThumbnailSize:
        await store.stat(thumbnail_key(photo.workspace_id, photo.id, size))  # still there
    assert EventType.READY not in [e.type for e in await photo_events(pool, photo)]


class SlowRenderer:
    """The real render pool, after a pause: keeps a job in flight long enough to stop on it."""

    def __init__(self, renderer: RenderPool, delay_s: float) -> None:
        self._renderer = renderer
        self._delay_s = delay_s

    async def render(self, data: bytes) -> Rendition:
        await asyncio.sleep(self._delay_s)
        return await self._renderer.render(data)


async def _start_consumer(
    pool: asyncpg.Pool,
    store: ObjectStore,
    amqp: AbstractRobustConnection,
    topology: Topology,
    renderer: SlowRenderer | RenderPool,
) -> JobConsumer:
    processor = ThumbnailProcessor(pool, store, renderer)
    consumer = JobConsumer(amqp, topology.jobs_queue, processor, ThumbnailerMetrics(), 2)
    await consumer.start()
    return consumer


async def wait_for_processing(pool: asyncpg.Pool, photo: PhotoRecord) -> None:
    async def processing() -> bool:
        current = await fetch_photo(pool, photo.workspace_id, photo.id)
        return current is not None and current.thumbnail_status == "processing"

    await wait_until(processing)


async def test_stop_lets_a_running_job_finish_within_the_grace_period(
    pool: asyncpg.Pool,
    store: ObjectStore,
    amqp: AbstractRobustConnection,
    topology: Topology,
    renderer: RenderPool,
    relay: None,
) -> None:
    consumer = await _start_consumer(pool, store, amqp, topology, SlowRenderer(renderer, 1.0))
    photo = await seed_photo(pool, store, jpeg(300, 200))
    await wait_for_processing(pool, photo)

    await consumer.stop(grace_s=10)

    done = await fetch_photo(pool, photo.workspace_id, photo.id)
    assert done is not None and done.thumbnail_status == ThumbnailStatus.COMPLETE


async def test_a_job_cut_short_by_stop_goes_back_to_the_queue(
    pool: asyncpg.Pool,
    store: ObjectStore,
    amqp: AbstractRobustConnection,
    topology: Topology,
    renderer: RenderPool,
    relay: None,
) -> None:
    consumer = await _start_consumer(pool, store, amqp, topology, SlowRenderer(renderer, 30.0))
    photo = await seed_photo(pool, store, jpeg(300, 200))
    await wait_for_processing(pool, photo)

    await consumer.stop(grace_s=0.2)
    interrupted = await fetch_photo(pool, photo.workspace_id, photo.id)
    assert interrupted is not None and interrupted.thumbnail_status == "processing"

    successor = await _start_consumer(pool, store, amqp, topology, renderer)
    try:
        done = await wait_for_status(pool, photo)
    finally:
        await successor.stop(grace_s=5)
    assert done.thumbnail_status == ThumbnailStatus.COMPLETE
    assert done.thumbnail_attempts == 2  # the redelivery claimed it again


def read_log(path: Path) -> str:
    return path.read_text(errors="replace")


def service_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THUMBWIRE_")}
    for field in fields(settings):
        value = getattr(settings, field.name)
        if value is not None:
            env[f"THUMBWIRE_{field.name.upper()}"] = str(value)
    env["THUMBWIRE_THUMBNAILER_CONCURRENCY"] = "1"
    return env


async def test_the_service_process_serves_health_and_metrics_and_stops_on_sigterm(
    settings: Settings,
    pool: asyncpg.Pool,
    store: ObjectStore,
    exchanges: dict[str, AbstractExchange],
    tmp_path: Path,
) -> None:
    """No in-process consumer here: the photo can only be finished by the process."""
    log_path = tmp_path / "thumbnailer.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.thumbnailer",
            env=service_env(settings),
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        base = f"http://{settings.thumbnailer_metrics_addr}"
        async with aiohttp.ClientSession() as http:
            await _wait_healthy(http, base, process, log_path)
            photo = await seed_photo(pool, store, jpeg(640, 480))
            done = await wait_for_status(pool, photo)
            assert done.thumbnail_status == ThumbnailStatus.COMPLETE, read_log(log_path)
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200
                page = await response.text()
        assert 'thumbwire_thumbnailer_jobs_total{attempt="1",outcome="completed"}' in page
        assert "thumbwire_thumbnailer_processing_seconds_bucket" in page

        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await process.wait() == 0, read_log(log_path)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def _wait_healthy(
    http: aiohttp.ClientSession, base: str, process: asyncio.subprocess.Process, log_path: Path
) -> None:
    async with asyncio.timeout(30):
        while True:
            assert process.returncode is None, read_log(log_path)
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{base}/healthz") as response:
                    if response.status == 200 and await response.text() == "ok":
                        return
            await asyncio.sleep(0.2)
