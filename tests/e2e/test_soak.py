"""A soak: photos through the whole stack while real faults hit it at random moments. Afterwards
every photo is finished as it should be, each event happened once, and a subscriber that
resumed after every interruption saw exactly the event log.

N = 40 photos (36 good uploads, 4 originals corrupt at rest) over about 15 s, with a fault
every 0.5-1.5 s from a seeded random schedule (printed), each kind once per round: the
thumbnailer SIGKILLed and restarted, the broker stopped and started, every broker connection
cut, object storage cut off from the thumbnailer for 1-2 s, and every service's database
connections terminated. A corrupt photo may meet a storage fault first (and retry for it);
it must never be retried for being corrupt."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import grpc
import pytest
from thumbwire.v1 import notifier_pb2, notifier_pb2_grpc, photos_pb2

from services.core.config import Settings
from services.core.storage import ObjectStore
from tests.support import images
from tests.support.auth import bearer, token_for
from tests.support.photo_client import PhotoClient
from tests.support.rabbit_node import PrivateRabbitNode
from tests.support.seed import seed_photo
from tests.support.stack import Stack, own_settings
from tests.support.tcp_proxy import TcpProxy

GOOD_PHOTOS = 36
CORRUPT_PHOTOS = 4
SEED = 20261129


@dataclasses.dataclass
class Soak:
    stack: Stack
    proxy: TcpProxy
    rabbit: PrivateRabbitNode
    pool: asyncpg.Pool
    workspace: str


@pytest.fixture
async def soak(
    settings: Settings,
    rabbit: PrivateRabbitNode,
    pool: asyncpg.Pool,
    store: ObjectStore,
    tmp_path: Path,
) -> AsyncIterator[Soak]:
    assert settings.s3_endpoint is not None
    proxy = TcpProxy.in_front_of(settings.s3_endpoint)
    own = own_settings(
        settings,
        "soak",
        amqp_url=rabbit.amqp_url,
        retry_base_ms=500,  # a ladder of 0.5 + 1 + 2 + 4 s outlasts any one fault
        sweep_age_s=20,
        sweep_interval_s=2,
    )
    through_proxy = dataclasses.replace(own, s3_endpoint=proxy.url_through(own.s3_endpoint))
    stack = Stack(own, tmp_path, overrides={"thumbnailer": through_proxy})
    await stack.start()
    yield Soak(stack, proxy, rabbit, pool, f"soak-{int(time.time())}")
    codes = stack.stop()
    proxy.stop()
    print(stack.logs(1500))
    assert set(codes.values()) == {0}, codes


async def test_photos_through_random_faults_all_finish_once_and_nothing_is_lost(
    soak: Soak, store: ObjectStore
) -> None:
    client = PhotoClient(
        soak.stack.settings.upload_addr, token_for(soak.stack.settings, soak.workspace)
    )
    seen: list[int] = []
    subscriber = asyncio.create_task(resuming_subscriber(soak.stack.settings, soak.workspace, seen))
    stop_faults = asyncio.Event()
    faults = asyncio.create_task(inject_faults(soak, stop_faults))
    try:
        good = await upload_good_photos(client, soak.workspace)
        corrupt = [
            await seed_photo(soak.pool, store, images.jpeg(300, 200)[:900], soak.workspace)
            for _ in range(CORRUPT_PHOTOS)
        ]
        await asyncio.sleep(4)  # faults go on while the last photos are processed
        stop_faults.set()
        print("faults injected:", await faults)
        finished = await client.wait_finished(good, timeout_s=120)
        await wait_for_failed(soak.pool, [str(p.id) for p in corrupt])
    finally:
        stop_faults.set()
        await client.close()

    assert [p.thumbnail_status for p in finished] == [photos_pb2.THUMBNAIL_STATUS_COMPLETE] * len(
        good
    ), soak.stack.logs()
    assert all(1 <= p.thumbnail_attempts <= 5 for p in finished)
    events = await soak.pool.fetch(
        "SELECT id, type, photo_id FROM events WHERE workspace_id = $1 ORDER BY id",
        soak.workspace,
    )
    check_each_event_happened_once(events, {p.id for p in finished}, {str(p.id) for p in corrupt})
    retries = sum(r["type"] == "photo.thumbnail_retrying" for r in events)
    attempts = sorted(p.thumbnail_attempts for p in finished)
    print(f"retrying events: {retries}; attempts of good photos: {attempts};")
    print(f"client calls retried after UNAVAILABLE: {client.unavailable}")
    ids = [r["id"] for r in events]
    assert await caught_up(subscriber, seen, ids[-1]) == ids, "missed or repeated events"
    assert all(soak.stack.alive().values()), soak.stack.logs()


async def upload_good_photos(client: PhotoClient, ws: str) -> list[photos_pb2.Photo]:
    uploaded = []
    for i in range(GOOD_PHOTOS):
        uploaded.append(await client.upload(ws, images.jpeg(500 + 10 * i, 400)))
        await asyncio.sleep(0.25)
    return uploaded


async def wait_for_failed(pool: asyncpg.Pool, photo_ids: list[str]) -> None:
    async with asyncio.timeout(120):
        while True:  # polling the database: it is where the state is
            rows = await pool.fetch(
                "SELECT thumbnail_status, thumbnail_attempts, thumbnail_error FROM photos"
                " WHERE id::text = ANY($1)",
                photo_ids,
            )
            if all(r["thumbnail_status"] == "failed" for r in rows):
                break
            await asyncio.sleep(0.2)
    for row in rows:  # permanent: failed with its reason, and never retried for it
        assert "could not be decoded" in row["thumbnail_error"]
    retried_for_it = await pool.fetchval(
        "SELECT count(*) FROM events WHERE photo_id::text = ANY($1)"
        " AND type = 'photo.thumbnail_retrying' AND error LIKE '%could not be decoded%'",
        photo_ids,
    )
    assert retried_for_it == 0


def check_each_event_happened_once(
    events: list[asyncpg.Record], good: set[str], corrupt: set[str]
) -> None:
    by_photo: dict[str, list[str]] = {}
    for row in events:
        by_photo.setdefault(str(row["photo_id"]), []).append(row["type"])
    assert set(by_photo) == good | corrupt
    for photo_id, types in by_photo.items():
        terminal = "photo.thumbnail_ready" if photo_id in good else "photo.thumbnail_failed"
        assert types[0] == "photo.uploaded" and types.count("photo.uploaded") == 1, types
        assert types[-1] == terminal, types
        assert types.count("photo.thumbnail_ready") + types.count("photo.thumbnail_failed") == 1
        assert types.count("photo.thumbnail_processing") <= 5, types


async def resuming_subscriber(settings: Settings, ws: str, seen: list[int]) -> None:
    """A client of Subscribe that resumes after every interruption from the last id it saw, as
    the API asks clients to do; appends the ids it sees to `seen`, until cancelled."""
    async with grpc.aio.insecure_channel(settings.notifier_addr) as channel:
        stub = notifier_pb2_grpc.NotifierServiceStub(channel)
        while True:
            request = notifier_pb2.SubscribeRequest(
                workspace_id=ws, after_event_id=seen[-1] if seen else 0
            )
            try:
                token = token_for(settings, ws)
                async for event in stub.Subscribe(request, metadata=bearer(token)):
                    seen.append(event.id)
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.2)


async def caught_up(subscriber: asyncio.Task[None], seen: list[int], last_id: int) -> list[int]:
    """What the subscriber saw, once it has seen `last_id` (or after 30 s)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(30):
            while True:  # the subscriber's list is the thing to watch
                if seen and seen[-1] >= last_id:
                    break
                await asyncio.sleep(0.2)
    subscriber.cancel()
    await asyncio.gather(subscriber, return_exceptions=True)
    return seen


async def inject_faults(soak: Soak, stop: asyncio.Event) -> list[str]:
    """Faults at random moments until `stop`; returns what it did, in order."""
    rng = random.Random(SEED)
    faults: dict[str, Callable[[Soak, random.Random], Awaitable[None]]] = {
        "kill thumbnailer": kill_thumbnailer,
        "stop broker": stop_broker,
        "cut broker connections": cut_broker_connections,
        "cut object storage": cut_object_storage,
        "terminate database connections": terminate_database_connections,
    }
    done: list[str] = []
    upcoming: list[str] = []
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(0.5, 1.5))
        if not upcoming:  # every kind of fault in each round, in a random order
            upcoming = rng.sample(sorted(faults), len(faults))
        name = upcoming.pop()
        await faults[name](soak, rng)
        done.append(name)
    return done


async def kill_thumbnailer(soak: Soak, rng: random.Random) -> None:
    soak.stack.kill("thumbnailer")
    await asyncio.sleep(rng.uniform(0.2, 1.0))
    await soak.stack.start("thumbnailer")


async def stop_broker(soak: Soak, rng: random.Random) -> None:
    await asyncio.to_thread(soak.rabbit.stop_app)
    await asyncio.sleep(rng.uniform(0.5, 1.5))
    await asyncio.to_thread(soak.rabbit.start_app)


async def cut_broker_connections(soak: Soak, _rng: random.Random) -> None:
    await asyncio.to_thread(soak.rabbit.close_all_connections)


async def cut_object_storage(soak: Soak, rng: random.Random) -> None:
    soak.proxy.cut()
    await asyncio.sleep(rng.uniform(1.0, 2.0))
    soak.proxy.restore()


async def terminate_database_connections(soak: Soak, _rng: random.Random) -> None:
    await soak.pool.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name LIKE 'thumbwire-%'"
    )
