"""Real faults against the services as processes: the broker stopped, a worker SIGKILLed, the
database restarted, and SIGTERM. Each checks that the services heal by themselves and that no
photo is lost or left unfinished."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import grpc
import pytest
from thumbwire.v1 import notifier_pb2, notifier_pb2_grpc, photos_pb2

from services.core.config import Settings
from services.core.storage import ObjectStore
from tests.support import images
from tests.support.auth import bearer, token_for
from tests.support.cli import thumbwire
from tests.support.pg_cluster import PrivatePostgres
from tests.support.photo_client import PhotoClient
from tests.support.rabbit_node import PrivateRabbitNode
from tests.support.stack import Stack, own_settings
from tests.support.thumbnailing import wait_until

COMPLETE = photos_pb2.THUMBNAIL_STATUS_COMPLETE
PENDING = photos_pb2.THUMBNAIL_STATUS_PENDING


@pytest.fixture
async def stack(on_rabbit: Callable[[str], Settings], tmp_path: Path) -> AsyncIterator[Stack]:
    """The three services on the test's own broker node, one image at a time."""
    own = on_rabbit("faults")
    running = Stack(own, tmp_path)
    await running.start()
    yield running
    codes = running.stop()
    print(running.logs())
    assert set(codes.values()) == {0}, codes


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[PhotoClient]:
    photo_client = PhotoClient(stack.settings.upload_addr, token_for(stack.settings, *WORKSPACES))
    yield photo_client
    await photo_client.close()


# One per test: the tests share the run's database.
WORKSPACES = ("broker-down", "sigkill", "drain", "pgrestart", "pgoutage", "cli-late")


def workspace(name: str) -> str:
    assert name in WORKSPACES
    return name


async def test_uploads_succeed_while_the_broker_is_stopped_and_finish_after_it_returns(
    stack: Stack, client: PhotoClient, rabbit: PrivateRabbitNode
) -> None:
    ws = workspace("broker-down")
    rabbit.stop_app()
    try:
        uploaded = [await client.upload(ws, images.jpeg(400 + i, 300)) for i in range(4)]
    finally:
        rabbit.start_app()

    assert [p.thumbnail_status for p in uploaded] == [PENDING] * 4
    finished = await client.wait_finished(uploaded)
    assert [p.thumbnail_status for p in finished] == [COMPLETE] * 4, stack.logs()
    assert all(stack.alive().values()), stack.logs()
    # The notifier came back too: a new subscriber sees the next photo through to ready.
    ready = await _ready_event_of_next_upload(stack.settings, client, ws)
    assert ready.photo.thumbnail_status == COMPLETE


async def _ready_event_of_next_upload(
    settings: Settings, client: PhotoClient, ws: str
) -> notifier_pb2.PhotoEvent:
    async with asyncio.timeout(60):
        while True:  # the notifier may still be reconnecting: then its stream ends at once
            async for event in _subscribe_and_upload(settings, client, ws):
                if event.type == "photo.thumbnail_ready":
                    return event
            await asyncio.sleep(0.5)


async def _subscribe_and_upload(
    settings: Settings, client: PhotoClient, ws: str
) -> AsyncIterator[notifier_pb2.PhotoEvent]:
    async with grpc.aio.insecure_channel(settings.notifier_addr) as channel:
        call = notifier_pb2_grpc.NotifierServiceStub(channel).Subscribe(
            notifier_pb2.SubscribeRequest(workspace_id=ws), metadata=bearer(token_for(settings, ws))
        )
        try:
            await call.initial_metadata()
            photo = await client.upload(ws, images.jpeg(200, 100))
            async for event in call:
                if event.photo_id == photo.id:
                    yield event
        except grpc.aio.AioRpcError:
            return


async def test_a_thumbnailer_killed_mid_job_is_replaced_and_every_photo_completes(
    stack: Stack, client: PhotoClient, pool: asyncpg.Pool
) -> None:
    ws = workspace("sigkill")
    data = images.png(2400, 1800, "RGB")
    uploaded = [await client.upload(ws, data) for _ in range(6)]
    await _wait_for_a_photo_in_processing(pool, ws)

    stack.kill("thumbnailer")
    interrupted = await _ids_with_status(pool, ws, "processing")
    assert interrupted, "the kill should have caught a job in progress"
    await stack.start("thumbnailer")

    finished = await client.wait_finished(uploaded)
    assert [p.thumbnail_status for p in finished] == [COMPLETE] * 6, stack.logs()
    assert await _ids_with_status(pool, ws, "processing") == set()
    for photo in finished:
        expected_attempts = 2 if photo.id in interrupted else 1
        assert photo.thumbnail_attempts == expected_attempts, photo
    assert await _ready_events_per_photo(pool, ws) == {p.id: 1 for p in finished}


async def _wait_for_a_photo_in_processing(pool: asyncpg.Pool, ws: str) -> None:
    async with asyncio.timeout(30):
        while True:  # polling the database is the point: it is where the state is
            if await _ids_with_status(pool, ws, "processing"):
                return
            await asyncio.sleep(0.01)


async def _ids_with_status(pool: asyncpg.Pool, ws: str, status: str) -> set[str]:
    rows = await pool.fetch(
        "SELECT id FROM photos WHERE workspace_id = $1 AND thumbnail_status = $2", ws, status
    )
    return {str(r["id"]) for r in rows}


async def _ready_events_per_photo(pool: asyncpg.Pool, ws: str) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT photo_id, count(*) AS n FROM events"
        " WHERE workspace_id = $1 AND type = 'photo.thumbnail_ready' GROUP BY photo_id",
        ws,
    )
    return {str(r["photo_id"]): r["n"] for r in rows}


async def test_sigterm_drains_every_service_within_30_seconds(
    on_rabbit: Callable[[str], Settings], pool: asyncpg.Pool, tmp_path: Path
) -> None:
    own = on_rabbit("drain")
    stack = Stack(own, tmp_path)
    await stack.start()
    client = PhotoClient(own.upload_addr, token_for(own, *WORKSPACES))
    ws = workspace("drain")
    try:
        stream = asyncio.create_task(_stream_until_closed(own, ws))
        uploaded = [await client.upload(ws, images.png(2400, 1800, "RGB")) for _ in range(3)]
        await _wait_for_a_photo_in_processing(pool, ws)

        codes = stack.stop()  # SIGTERM; each must exit, cleanly, within 30 s

        assert codes == {"upload": 0, "thumbnailer": 0, "notifier": 0}, stack.logs()
        async with asyncio.timeout(5):
            assert await stream == "closed by the server"
        assert await _ids_with_status(pool, ws, "processing") == set(), "a job was left behind"
        await stack.start("upload", "thumbnailer")  # the queued jobs are all still there
        finished = await client.wait_finished(uploaded)
        assert [p.thumbnail_status for p in finished] == [COMPLETE] * 3
    finally:
        await client.close()
        stack.stop()


async def _stream_until_closed(settings: Settings, ws: str) -> str:
    async with grpc.aio.insecure_channel(settings.notifier_addr) as channel:
        call = notifier_pb2_grpc.NotifierServiceStub(channel).Subscribe(
            notifier_pb2.SubscribeRequest(workspace_id=ws), metadata=bearer(token_for(settings, ws))
        )
        try:
            async for _event in call:
                pass
        except grpc.aio.AioRpcError as exc:
            return f"ended with {exc.code().name}"
        return "closed by the server"


StackOnPrivatePostgres = Callable[
    ..., contextlib.AbstractAsyncContextManager[tuple[Stack, PhotoClient]]
]


@pytest.fixture
def on_private_postgres(
    settings: Settings,
    rabbit: PrivateRabbitNode,
    private_postgres: PrivatePostgres,
    store: ObjectStore,
    tmp_path: Path,
) -> StackOnPrivatePostgres:
    """on_private_postgres(workspace, **settings): a stack whose database is the test's own
    PostgreSQL server (to stop and start), and a client of it; every service must be alive
    at the end, and exit cleanly."""

    @contextlib.asynccontextmanager
    async def running(name: str, **changes: object) -> AsyncIterator[tuple[Stack, PhotoClient]]:
        own = own_settings(
            settings,
            name,
            amqp_url=rabbit.amqp_url,
            database_url=private_postgres.url(f"thumbwire_{name}"),
            **changes,
        )
        stack = Stack(own, tmp_path)
        await stack.start()
        client = PhotoClient(own.upload_addr, token_for(own, *WORKSPACES))
        try:
            yield stack, client
            assert all(stack.alive().values()), stack.logs()
        finally:
            await client.close()
            codes = stack.stop()
        assert set(codes.values()) == {0}, codes

    return running


async def test_a_database_restart_during_work_loses_nothing(
    private_postgres: PrivatePostgres, on_private_postgres: StackOnPrivatePostgres
) -> None:
    ws = workspace("pgrestart")
    async with on_private_postgres(ws, thumbnailer_concurrency=2) as (stack, client):
        uploads = asyncio.create_task(_upload_steadily(client, ws, count=12))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(private_postgres.restart)
        uploaded = await uploads

        finished = await client.wait_finished(uploaded)
        assert [p.thumbnail_status for p in finished] == [COMPLETE] * 12, stack.logs()
        db = await asyncpg.connect(stack.settings.database_url)
        try:
            count = await db.fetchval("SELECT count(*) FROM photos WHERE workspace_id = $1", ws)
        finally:
            await db.close()
        assert count == 12  # retried uploads did not make duplicates


async def test_a_database_outage_longer_than_the_retry_ladder_spends_no_attempt(
    private_postgres: PrivatePostgres, on_private_postgres: StackOnPrivatePostgres
) -> None:
    """Jobs that meet a stopped database wait for it and spend no attempt: the photos
    complete at their first once it returns (they came back at their fifth, before)."""
    ws = workspace("pgoutage")
    async with on_private_postgres(
        ws,
        thumbnailer_concurrency=1,
        retry_base_ms=100,  # the whole ladder: 1.5 s
    ) as (stack, client):
        thumbnailer = stack.processes["thumbnailer"].process
        thumbnailer.send_signal(signal.SIGSTOP)  # the jobs queue up for it
        try:
            uploaded = [await client.upload(ws, images.jpeg(640 + i, 480)) for i in range(4)]
            await _until_jobs_relayed(stack.settings.database_url)
            await asyncio.to_thread(private_postgres.shut_down)
        finally:
            thumbnailer.send_signal(signal.SIGCONT)
        await asyncio.sleep(4.0)
        await asyncio.to_thread(private_postgres.start_again)

        finished = await client.wait_finished(uploaded)
        assert [p.thumbnail_status for p in finished] == [COMPLETE] * 4, stack.logs()
        assert [p.thumbnail_attempts for p in finished] == [1] * 4


async def test_the_cli_upload_waits_out_an_upload_service_that_is_down(
    on_rabbit: Callable[[str], Settings], tmp_path: Path
) -> None:
    """`thumbwire upload` meets UNAVAILABLE (nothing listens yet), says so, tries again, and
    uploads once the service is up: a restart does not fail a batch of uploads."""
    own = on_rabbit("clilate")
    stack = Stack(own, tmp_path)
    await stack.start("notifier", "thumbnailer")
    photo = tmp_path / "late.jpg"
    photo.write_bytes(images.jpeg(800, 600))
    ws = workspace("cli-late")
    try:
        upload = asyncio.create_task(
            thumbwire(own, "upload", str(photo), "--workspace", ws, "--item", "i", "--wait")
        )
        await asyncio.sleep(3.0)
        assert not upload.done()
        await stack.start("upload")

        result = await upload
        assert result.returncode == 0, result.stderr
        assert "late.jpg" in result.stdout and "uploaded as" in result.stdout
        assert "unavailable" in result.stderr and "trying again in" in result.stderr
        assert len([line for line in result.stdout.splitlines() if "large" in line]) == 1
    finally:
        codes = stack.stop()
    assert set(codes.values()) == {0}, codes


async def _until_jobs_relayed(database_url: str) -> None:
    """The upload service's relay has published every job to the broker."""
    db = await asyncpg.connect(database_url)

    async def relayed() -> bool:
        return not await db.fetchval("SELECT count(*) FROM outbox WHERE exchange = 'jobs'")

    try:
        await wait_until(relayed)
    finally:
        await db.close()


async def _upload_steadily(client: PhotoClient, ws: str, count: int) -> list[photos_pb2.Photo]:
    uploaded = []
    for i in range(count):
        uploaded.append(await client.upload(ws, images.jpeg(640 + i, 480)))
        await asyncio.sleep(0.2)
    return uploaded
