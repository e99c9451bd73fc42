"""Fixtures over the real services: each test run gets its own PostgreSQL database, its own
THUMBWIRE_NAMESPACE on the shared RabbitMQ, and its own embedded S3 server and bucket."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import aio_pika
import aiohttp
import asyncpg
import pytest
from aio_pika.abc import AbstractExchange, AbstractRobustConnection

from services.core import broker, database
from services.core.config import Settings
from services.core.s3_server import EmbeddedS3Server
from services.core.storage import ObjectStore
from services.core.topology import Topology, declare_topology
from tests.support.auth import new_secret
from tests.support.ports import free_address

RUN_ID = uuid.uuid4().hex[:10]
NAMESPACE = f"twtest-{RUN_ID}"


@pytest.fixture(scope="session", autouse=True)
async def clean_broker_afterwards() -> AsyncIterator[None]:
    """Removes the run's queues and exchanges at the end, whichever tests ran: tests declare
    them under suffixed namespaces without necessarily asking for the amqp fixture."""
    yield
    names = [name for name in _broker_names() if name.startswith(NAMESPACE)]
    if names:
        connection = await broker.connect(Settings().amqp_url, "tests-cleanup")
        await _delete_broker_names(connection, names)
        await connection.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedS3Server]:
    server = EmbeddedS3Server(
        f"http://{free_address()}", tmp_path_factory.mktemp("s3"), "minioadmin", "minioadmin"
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(s3_server: EmbeddedS3Server) -> Settings:
    gateway = free_address()
    return Settings(
        database_url=f"postgresql://postgres@127.0.0.1:5432/thumbwire_test_{RUN_ID}",
        namespace=NAMESPACE,
        s3_endpoint=s3_server.endpoint,
        s3_bucket=f"thumbwire-test-{RUN_ID}",
        upload_addr=free_address(),
        notifier_addr=free_address(),
        gateway_addr=gateway,
        thumbnailer_metrics_addr=free_address(),
        upload_metrics_addr=free_address(),
        outbox_poll_interval_s=0.2,
        readiness_interval_s=0.2,
        thumbnailer_concurrency=2,
        # The ladder is 100, 200, 400, 800 ms: every rung runs in a test within seconds.
        retry_base_ms=100,
        # Every call needs a token signed with it: tests.support.auth.token_for(settings, ws).
        auth_secret=new_secret(),
    )


@pytest.fixture(scope="session")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    await database.prepare(settings.database_url)
    db_pool = await database.create_pool(settings.database_url)
    yield db_pool
    await db_pool.close()
    await _drop_database(settings.database_url)


@pytest.fixture(scope="session")
async def store(settings: Settings) -> AsyncIterator[ObjectStore]:
    object_store = ObjectStore.from_settings(settings)
    await object_store.ensure_bucket()
    yield object_store
    await object_store.close()


@pytest.fixture(scope="session")
def topology(settings: Settings) -> Topology:
    return Topology.from_settings(settings)


@pytest.fixture(scope="session")
async def amqp(settings: Settings) -> AsyncIterator[AbstractRobustConnection]:
    connection = await broker.connect(settings.amqp_url, "tests")
    yield connection
    await connection.close()


@pytest.fixture(scope="session")
async def exchanges(
    amqp: AbstractRobustConnection, topology: Topology
) -> dict[str, AbstractExchange]:
    # As the services publish: an unroutable mandatory message raises.
    channel = await amqp.channel(on_return_raises=True)
    return await declare_topology(channel, topology)


async def _drop_database(database_url: str) -> None:
    name = database_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(database_url.rsplit("/", 1)[0] + "/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _delete_broker_names(connection: AbstractRobustConnection, names: list[str]) -> None:
    for name in names:
        for delete in ("queue_delete", "exchange_delete"):
            channel = await connection.channel()
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await getattr(channel, delete)(name)
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.close()


def _broker_names() -> list[str]:
    """Every queue and exchange name on the broker."""
    names = []
    for kind in ("queues", "exchanges"):
        result = subprocess.run(
            ["rabbitmqctl", "-q", f"list_{kind}", "name"],
            capture_output=True,
            text=True,
            check=False,
        )
        names += [line.strip() for line in result.stdout.splitlines()[1:] if line.strip()]
    return names


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # No read timeout: SSE streams stay open; the tests bound their waits themselves.
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session
