"""Readiness against real faults, with the services as processes.

Health follows the broker: with every service on a RabbitMQ node of the test's own, stopping
the node turns gRPC health NOT_SERVING and the thumbnailer's /healthz 503 within seconds, and
starting it again brings them back by themselves (the connections are robust), with the work
going on from that moment. A stopping process says so before it exits: the thumbnailer's
/healthz and the notifier gateway's answer 503 while they drain; and it does exit, promptly,
even while the broker is down.

The gateway's /healthz is a liveness check: it stays 200 through a broker outage, since a
notifier recovers by itself and must not be restarted for it (its gRPC health is what takes
it out of rotation)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from thumbwire.v1 import photos_pb2

from services.core.config import Settings
from services.core.storage import ObjectStore
from tests.support import images
from tests.support.auth import token_for
from tests.support.outages import (
    NOT_SERVING,
    SERVING,
    grpc_health,
    holding_lock,
    http_status,
    own_database,
    until,
    with_database,
)
from tests.support.photo_client import PhotoClient
from tests.support.rabbit_node import PrivateRabbitNode
from tests.support.seed import enqueue, seed_photo
from tests.support.stack import Stack, own_settings, running_stack
from tests.support.streams import GrpcSubscription
from tests.support.thumbnailing import wait_for_status

pytestmark = pytest.mark.e2e

# The readiness probe runs every 0.2 s here (the tests' settings); the broker closes its
# connections as it stops, and robust connections try again every second (after the node's
# boot, which start_app waits for).
BROKER_LOSS_S = 5.0
BROKER_RETURN_S = 10.0
# A draining process turns unhealthy at once: its first step.
DRAIN_S = 3.0

# (upload gRPC, notifier gRPC, thumbnailer /healthz, thumbnailer /livez, gateway /healthz)
READY = (SERVING, SERVING, 200, 200, 200)
BROKER_DOWN = (NOT_SERVING, NOT_SERVING, 503, 200, 200)


async def health_of(settings: Settings) -> tuple[int | None, int | None, int, int, int]:
    thumbnailer = f"http://{settings.thumbnailer_metrics_addr}"
    upload, notifier, ready, alive, gateway = await asyncio.gather(
        grpc_health(settings.upload_addr),
        grpc_health(settings.notifier_addr),
        http_status(f"{thumbnailer}/healthz"),
        http_status(f"{thumbnailer}/livez"),
        http_status(f"http://{settings.gateway_addr}/healthz"),
    )
    return upload, notifier, ready, alive, gateway


async def test_health_follows_the_broker_and_work_goes_on_once_it_says_serving(
    on_rabbit: Callable[[str], Settings], rabbit: PrivateRabbitNode, tmp_path: Path
) -> None:
    own = on_rabbit("ready-broker")
    async with running_stack(own, tmp_path) as stack:
        await until(lambda: health_of(stack.settings), READY)

        stopping = asyncio.create_task(asyncio.to_thread(rabbit.stop_app))
        started = time.monotonic()
        try:
            await until(lambda: health_of(stack.settings), BROKER_DOWN, BROKER_LOSS_S)
            print(f"not ready {time.monotonic() - started:.1f}s after the broker began to stop")
        finally:
            await stopping
            started = time.monotonic()
            await asyncio.to_thread(rabbit.start_app)  # returns once the node has booted
        await until(lambda: health_of(stack.settings), READY, BROKER_RETURN_S)
        print(f"ready again {time.monotonic() - started:.1f}s after the broker began to start")

        # SERVING means it: the next subscriber and upload work at the first try, and the job
        # is consumed, its thumbnails made and its events delivered live.
        await _upload_and_follow_to_ready(stack, "ready-broker")


async def test_every_service_stops_promptly_while_the_broker_is_down(
    on_rabbit: Callable[[str], Settings], rabbit: PrivateRabbitNode, tmp_path: Path
) -> None:
    """Draining must not wait for a broker that is not there: a stopping consumer's cancel
    used to wait for the connection to return, so a thumbnailer or notifier stopped during an
    outage never exited."""
    own = on_rabbit("ready-stop")
    stack = Stack(own, tmp_path)
    await stack.start()
    await until(lambda: health_of(stack.settings), READY)
    await asyncio.to_thread(rabbit.stop_app)
    try:
        await until(lambda: health_of(stack.settings), BROKER_DOWN, BROKER_LOSS_S)
        started = time.monotonic()
        codes = await asyncio.to_thread(stack.stop)
        print(f"all stopped {time.monotonic() - started:.1f}s after SIGTERM")
    finally:
        await asyncio.to_thread(rabbit.start_app)
    assert codes == {"upload": 0, "thumbnailer": 0, "notifier": 0}, stack.logs()


async def _upload_and_follow_to_ready(stack: Stack, ws: str) -> None:
    client = PhotoClient(stack.settings.upload_addr, token_for(stack.settings, ws))
    try:
        async with GrpcSubscription(stack.settings, ws) as subscription:
            await subscription.call.initial_metadata()  # subscribed
            photo = await client.upload(ws, images.jpeg(320, 240))
            assert client.unavailable == 0, "the upload service said SERVING, then refused"
            events = await subscription.take(3)
    finally:
        await client.close()
    assert [(e.type, e.photo_id) for e in events] == [
        ("photo.uploaded", photo.id),
        ("photo.thumbnail_processing", photo.id),
        ("photo.thumbnail_ready", photo.id),
    ]
    assert events[-1].photo.thumbnail_status == photos_pb2.THUMBNAIL_STATUS_COMPLETE


async def test_thumbnailer_healthz_is_503_while_it_drains_a_job(
    settings: Settings, pool: asyncpg.Pool, store: ObjectStore, tmp_path: Path
) -> None:
    """The job is held in flight by a lock on its photo's row, so the drain cannot end before
    the test has seen /healthz; once the lock goes, the job finishes and the process exits."""
    own = own_settings(settings, "ready-drain-th", thumbnailer_concurrency=1)
    healthz = f"http://{own.thumbnailer_metrics_addr}/healthz"
    photo = await seed_photo(pool, store, images.jpeg(320, 240), enqueue=False)
    stack = Stack(own, tmp_path)
    await stack.start("thumbnailer")
    thumbnailer = stack.processes["thumbnailer"]
    try:
        row = "SELECT 1 FROM photos WHERE id = $1 FOR UPDATE"
        async with holding_lock(own.database_url, row, photo.id) as lock:
            await enqueue(pool, photo)
            await until(lock.waiters, 1)  # the thumbnailer's claim of the photo waits
            assert await http_status(healthz) == 200

            exit_code = asyncio.create_task(asyncio.to_thread(thumbnailer.terminate, 30))
            await until(lambda: http_status(healthz), 503, DRAIN_S)
            assert thumbnailer.process.poll() is None, "503 must come before the exit"
            assert await lock.waiters() == 1, "the job is still in flight"

        assert await exit_code == 0, thumbnailer.output()
    finally:
        stack.stop()
    done = await wait_for_status(pool, photo, timeout_s=5)
    assert done.thumbnail_status == "complete", "the drain let the job in flight finish"


async def test_gateway_healthz_is_503_while_the_notifier_drains(
    settings: Settings, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """A Subscribe replaying from a locked event log holds the gRPC server's drain (up to its
    grace), while the gateway still listens: long enough to see /healthz answer."""
    async with own_database(pool, settings) as database:
        own = own_settings(with_database(settings, database), "ready-drain-no")
        healthz = f"http://{own.gateway_addr}/healthz"
        stack = Stack(own, tmp_path)
        await stack.start("notifier")
        notifier = stack.processes["notifier"]
        try:
            log = "LOCK TABLE events IN ACCESS EXCLUSIVE MODE"
            async with (
                holding_lock(database.url, log) as lock,
                GrpcSubscription(own, "ready-drain", after_event_id=1),
            ):
                await until(lock.waiters, 1)  # the replay waits
                assert await http_status(healthz) == 200

                exit_code = asyncio.create_task(asyncio.to_thread(notifier.terminate, 30))
                await until(lambda: http_status(healthz), 503, DRAIN_S)
                assert notifier.process.poll() is None, "503 must come before the exit"
            assert await exit_code == 0, notifier.output()
        finally:
            stack.stop()
