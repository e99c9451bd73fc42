"""The shared parts against the real services: migrations, object store, outbox relay."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import uuid

import aio_pika
import asyncpg
import pytest

from services.core import database, outbox
from services.core.config import Settings
from services.core.events import EventRecord, EventType, change_photo, events_after
from services.core.lifecycle import cancel_and_wait
from services.core.outbox import OutboxMessage
from services.core.photos import PHOTO_COLUMNS, StoredThumbnail, ThumbnailSize
from services.core.s3_server import EmbeddedS3Server
from services.core.storage import ObjectNotFound, ObjectStore, StorageError
from services.core.topology import Topology
from tests.support.images import jpeg
from tests.support.polling import eventually
from tests.support.ports import free_address
from tests.support.seed import seed_photo


async def test_migrations_are_idempotent(pool: asyncpg.Pool, settings: Settings) -> None:
    assert await database.migrate(settings.database_url) == []
    tables = {r["tablename"] for r in await pool.fetch("SELECT tablename FROM pg_tables")}
    assert {"photos", "events", "outbox", "schema_migrations"} <= tables


async def test_a_released_connection_is_rolled_back_but_not_reset(settings: Settings) -> None:
    """Release sends no reset query (its session setting survives), yet an open transaction
    is still rolled back, so the next user never sees uncommitted work."""
    pool = await database.create_pool(settings.database_url, 1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'left-behind'")
            await conn.execute("CREATE TEMP TABLE IF NOT EXISTS released (n int)")
            tx = conn.transaction()
            await tx.start()
            await conn.execute("INSERT INTO released VALUES (1)")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") == "left-behind"
            assert await conn.fetchval("SELECT count(*) FROM released") == 0
    finally:
        await pool.close()


def test_the_embedded_s3_server_shares_this_session_but_not_its_process_group(
    s3_server: EmbeddedS3Server,
) -> None:
    """Ctrl-C at the terminal does not reach it, and the scheduler does not give it a CPU
    share of its own beside the image workers (services/core/s3_server.py)."""
    assert s3_server.pid is not None
    assert os.getsid(s3_server.pid) == os.getsid(0)
    assert os.getpgid(s3_server.pid) == s3_server.pid != os.getpgid(0)


async def test_object_store_round_trip(store: ObjectStore) -> None:
    await store.put("tests/round-trip", b"hello", "text/plain")
    assert await store.get("tests/round-trip") == b"hello"
    assert (await store.stat("tests/round-trip")).size == 5
    await store.delete_many(["tests/round-trip", "tests/never-there"])
    with pytest.raises(ObjectNotFound):
        await store.get("tests/round-trip")
    with pytest.raises(ObjectNotFound):
        await store.stat("tests/round-trip")


async def test_object_store_round_trip_of_a_multipart_upload(store: ObjectStore) -> None:
    """Past 5 MiB the client uploads in parts, and completing the upload names each part by the
    ETag its PUT answered: the embedded server, which hashes no reads, must still give them."""
    data = os.urandom(12 * 1024 * 1024 + 1)
    await store.put("tests/multipart", data, "application/octet-stream")
    assert await store.get("tests/multipart") == data
    assert (await store.stat("tests/multipart")).size == len(data)
    await store.delete_many(["tests/multipart"])


async def test_a_missing_bucket_is_a_storage_error_not_a_missing_object(
    settings: Settings, store: ObjectStore
) -> None:
    """A store whose bucket is gone is broken (UNAVAILABLE to clients), whatever the key."""
    broken = ObjectStore.from_settings(dataclasses.replace(settings, s3_bucket="no-such-bucket"))
    with pytest.raises(StorageError):
        await broken.put("tests/anything", b"x", "text/plain")
    with pytest.raises(StorageError):
        await broken.get("tests/anything")
    await broken.close()


async def test_small_puts_on_the_event_loop_are_signed_for_any_key(store: ObjectStore) -> None:
    """Small objects take the aiohttp path (object_put.py): a key that needs quoting must
    still match its signature, and reads back through minio."""
    key = "tests/small put/ünïcode+plus&amp;=.webp"
    await store.put(key, b"thumbnail", "image/webp")
    assert await store.get(key) == b"thumbnail"
    info = await store.stat(key)
    assert (info.size, info.content_type) == (9, "image/webp")
    await store.delete_many([key])


async def test_a_small_put_to_an_unreachable_store_is_a_storage_error(
    settings: Settings,
) -> None:
    endpoint = f"http://{free_address()}"  # nothing listens there
    unreachable = ObjectStore.from_settings(dataclasses.replace(settings, s3_endpoint=endpoint))
    try:
        with pytest.raises(StorageError, match="unreachable"):
            await unreachable.put("tests/anything", b"x", "text/plain")
    finally:
        await unreachable.close()


async def test_relay_publishes_in_order_and_deletes_after_confirm(
    pool: asyncpg.Pool, amqp, exchanges, topology: Topology
) -> None:
    channel = await amqp.channel()
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(topology.events_exchange, routing_key="relay.test")
    async with pool.acquire() as conn, conn.transaction():
        for n in range(5):
            await outbox.enqueue(
                conn, outbox.OutboxMessage("events", "relay.test", json.dumps({"n": n}).encode())
            )
    relay = outbox.OutboxRelay(pool, exchanges)
    assert await relay.drain() >= 5
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    received = []
    async with queue.iterator() as messages:
        async for message in messages:
            async with message.process():
                received.append(json.loads(message.body)["n"])
            if len(received) == 5:
                break
    assert received == [0, 1, 2, 3, 4]
    await channel.close()


async def test_relay_wakes_for_its_own_rows_and_for_writers_without_a_relay(
    pool: asyncpg.Pool, settings: Settings, exchanges
) -> None:
    """The upload service's relay leaves the thumbnailer's rows to the thumbnailer's relay (its
    poll, here 30 s, would still take them), and publishes its own and the CLI's at once."""
    upload = await database.create_pool(settings.database_url, 2, "thumbwire-upload")
    relay = asyncio.create_task(outbox.OutboxRelay(upload, exchanges, 30.0).run())
    try:
        await _enqueue_as(pool, "thumbwire-upload")
        await _until_outbox_empty(pool)  # the relay listens now
        await _enqueue_as(pool, "thumbwire-thumbnailer")
        await asyncio.sleep(0.5)
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
        await _enqueue_as(pool, "thumbwire-cli")
        await _until_outbox_empty(pool)
    finally:
        await cancel_and_wait(relay)
        await upload.close()


async def test_a_change_wakes_a_relay_of_its_own_process_without_a_notify(
    pool: asyncpg.Pool, store: ObjectStore, exchanges
) -> None:
    """A NOTIFY holds a database-wide lock from its transaction's commit until after the WAL
    flush (outbox.relays_here), so a statement that commits on its own wakes this process's
    relay itself; inside a longer transaction the NOTIFY stays, as only it comes after the
    commit. The relay's poll (30 s) is out of the picture."""
    heard: list[str] = []

    def on_notify(_conn: object, _pid: int, _channel: str, writer: str) -> None:
        heard.append(writer)

    listener = await pool.acquire()
    await listener.add_listener(outbox.NOTIFY_CHANNEL, on_notify)
    relay = asyncio.create_task(outbox.OutboxRelay(pool, exchanges, 30.0).run())
    try:
        await eventually(outbox.relays_here)
        await _until_outbox_empty(pool)
        photo = await seed_photo(pool, store, jpeg(64, 48))  # its event and its job
        await _until_outbox_empty(pool)
        await asyncio.sleep(0.2)  # a notification would have arrived by now
        assert heard == []

        delete = f"DELETE FROM photos WHERE id = $1 RETURNING {PHOTO_COLUMNS}"
        async with pool.acquire() as conn, conn.transaction():
            assert await change_photo(conn, delete, (photo.id,), EventType.DELETED)
        await _until_outbox_empty(pool)
        assert len(heard) == 1
    finally:
        await cancel_and_wait(relay)
        await listener.remove_listener(outbox.NOTIFY_CHANNEL, on_notify)
        await pool.release(listener)
    assert not outbox.relays_here()


async def _enqueue_as(pool: asyncpg.Pool, application_name: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('application_name', $1, true)", application_name)
        await outbox.enqueue(conn, outbox.OutboxMessage("events", "relay.wake-test", b"{}"))


async def _until_outbox_empty(pool: asyncpg.Pool) -> None:
    async with asyncio.timeout(5):
        while True:
            if not await pool.fetchval("SELECT count(*) FROM outbox"):
                return
            await asyncio.sleep(0.02)


async def test_a_relay_batch_commits_asynchronously_and_only_itself(pool: asyncpg.Pool) -> None:
    """The batch's transaction turns synchronous_commit off (outbox.TAKE_BATCH); the
    connection's next transaction commits synchronously again."""
    async with pool.acquire() as conn:
        default = await conn.fetchval("SHOW synchronous_commit")
        async with conn.transaction():
            rows = await conn.fetch(outbox.TAKE_BATCH, 1, 2, 10)
            assert [(r["holds"], r["id"]) for r in rows] == [(True, None)]  # held, took nothing
            assert await conn.fetchval("SHOW synchronous_commit") == "off"
        assert await conn.fetchval("SHOW synchronous_commit") == default


async def test_a_relay_without_the_relay_lock_takes_nothing(pool: asyncpg.Pool, exchanges) -> None:
    """While another relay holds the lock, a batch leaves every row where it is (publish_batch
    answers None, and drain waits for the lock); once the lock is free, the rows go in order."""
    async with pool.acquire() as conn, conn.transaction():
        for n in range(3):
            await outbox.enqueue(conn, outbox.OutboxMessage("events", f"relay.locked-{n}", b"{}"))
    relay = outbox.OutboxRelay(pool, exchanges)
    async with pool.acquire() as holder, holder.transaction():
        assert await holder.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", *outbox.RELAY_LOCK)
        assert await relay.publish_batch() is None
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 3
    assert await relay.publish_batch() == 3
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_relay_keeps_jobs_nobody_can_receive(
    pool: asyncpg.Pool, amqp, topology: Topology
) -> None:
    """A mandatory job publish that the broker returns stays in the outbox."""
    channel = await amqp.channel(on_return_raises=True)
    exchange = await channel.declare_exchange(
        f"{topology.namespace}.relay-unbound", aio_pika.ExchangeType.DIRECT
    )
    async with pool.acquire() as conn, conn.transaction():
        await outbox.enqueue(conn, outbox.OutboxMessage("jobs", "nobody-bound", b"{}"))
    relay = outbox.OutboxRelay(pool, {"jobs": exchange, "events": exchange})
    with pytest.raises(aio_pika.exceptions.DeliveryError):
        await asyncio.wait_for(relay.drain(), 10)
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
    await pool.execute("DELETE FROM outbox")
    await exchange.delete()
    await channel.close()


async def test_a_change_queues_its_event_as_the_notifiers_read_it(
    pool: asyncpg.Pool, store: ObjectStore
) -> None:
    """The event's photo and its outbox body, built in the database around the changed row and
    the event's id and time, are the event as change_photo returns it (and as the event log
    gives it back), with its times in UTC whatever the session's time zone."""
    photo = await seed_photo(pool, store, jpeg(64, 48), enqueue=False)
    change = (
        "UPDATE photos SET thumbnail_error = $3, thumbnails = $4, updated_at = clock_timestamp()"
        f" WHERE id = $1 AND workspace_id = $2 RETURNING {PHOTO_COLUMNS}"
    )
    thumbnail = StoredThumbnail(ThumbnailSize.SMALL, 160, 120, 999)
    args = (photo.id, photo.workspace_id, "storage error: é", [thumbnail.to_json()])
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            await conn.execute("SET LOCAL TimeZone = 'America/New_York'")
            event = await change_photo(conn, change, args, EventType.RETRYING, "boom: é", 2000)
            body = await conn.fetchval(
                "SELECT body FROM outbox WHERE exchange = 'events' ORDER BY id DESC LIMIT 1"
            )
            logged = await events_after(conn, photo.workspace_id, 0)
        finally:
            await transaction.rollback()  # nothing for the run's relays to publish
    assert event is not None and event.photo is not None
    assert event.photo.thumbnail_error == "storage error: é"
    assert event.photo.thumbnails == (thumbnail,)
    sent = json.loads(body)
    assert EventRecord.from_json(sent) == event == logged[-1]
    assert set(sent["photo"]) == set(event.photo.to_json())
    assert sent["occurred_at"].endswith("+00:00")
    assert sent["photo"]["updated_at"].endswith("+00:00")
    assert sent["error"] == "boom: é" and sent["retry_delay_ms"] == 2000


async def test_the_message_of_a_change_is_queued_before_its_event(
    pool: asyncpg.Pool, store: ObjectStore
) -> None:
    """The relay publishes in id order, each after the last is confirmed: a job behind its
    event would wait for the event's publish."""
    photo = await seed_photo(pool, store, jpeg(64, 48), enqueue=False)
    change = f"UPDATE photos SET caption = 'c' WHERE id = $1 RETURNING {PHOTO_COLUMNS}"
    message = OutboxMessage("jobs", "nobody-bound", b"{}")
    async with pool.acquire() as conn, conn.transaction():
        before = await conn.fetchval("SELECT coalesce(max(id), 0) FROM outbox")
        await change_photo(conn, change, (photo.id,), EventType.RETRYING, also=message)
        queued = await conn.fetch("SELECT exchange FROM outbox WHERE id > $1 ORDER BY id", before)
        await conn.execute("DELETE FROM outbox WHERE id > $1", before)
    assert [r["exchange"] for r in queued] == ["jobs", "events"]


async def test_a_workspaces_events_commit_in_id_order_so_a_reader_skips_none(
    pool: asyncpg.Pool, store: ObjectStore
) -> None:
    """Writers that draw event ids and then wait before they commit: a reader that resumes
    from the last id it saw must still see every event, which holds only if a workspace's
    ids are drawn under its event lock, held until the commit."""
    workspace_id = f"ws-{uuid.uuid4().hex[:8]}"
    photos = [
        await seed_photo(pool, store, jpeg(64, 48), workspace_id, enqueue=False) for _ in range(6)
    ]
    change = f"UPDATE photos SET caption = $2 WHERE id = $1 RETURNING {PHOTO_COLUMNS}"
    written: list[int] = []

    async def writer(n: int) -> None:  # each its own photo, so that no row lock orders them
        for i in range(8):
            async with pool.acquire() as conn, conn.transaction():
                args = (photos[n].id, f"{n}-{i}")
                event = await change_photo(conn, change, args, EventType.RETRYING)
                assert event is not None
                written.append(event.id)
                await asyncio.sleep(0.003 * ((n + i) % 3))  # commits in another order

    seen: list[int] = []

    async def reader(done: asyncio.Event) -> None:
        while True:
            finished = done.is_set()
            after = seen[-1] if seen else 0
            seen.extend(e.id for e in await events_after(pool, workspace_id, after))
            if finished:
                return
            await asyncio.sleep(0.001)

    done = asyncio.Event()
    reading = asyncio.create_task(reader(done))
    await asyncio.gather(*(writer(n) for n in range(len(photos))))
    done.set()
    await reading
    uploaded = await events_after(pool, workspace_id, 0, limit=len(photos))
    assert seen == sorted(seen)
    assert set(seen) == set(written) | {e.id for e in uploaded}


async def test_a_change_that_touches_no_row_writes_nothing(pool: asyncpg.Pool) -> None:
    missing = uuid.uuid4()
    before = await pool.fetchval("SELECT count(*) FROM outbox")
    change = f"DELETE FROM photos WHERE id = $1 RETURNING {PHOTO_COLUMNS}"
    message = OutboxMessage("jobs", "nobody-bound", b"{}")
    assert await change_photo(pool, change, (missing,), EventType.DELETED, also=message) is None
    assert await pool.fetchval("SELECT count(*) FROM events WHERE photo_id = $1", missing) == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox") == before
