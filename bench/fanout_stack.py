"""The notifier under the fan-out benchmark: a real `python -m services.notifier` process on a
database and a broker namespace of the run's own (as the tests have), and the events it fans
out, committed as the services commit them (event row and outbox row in one transaction, then
the outbox relay publishes them)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import asyncpg
from aio_pika.abc import AbstractRobustConnection

from bench.stack_cleanup import drop_database
from services.core import broker, database
from services.core.config import Settings
from services.core.events import EventType, change_photo
from services.core.outbox import OutboxRelay
from services.core.photos import PHOTO_COLUMNS, PhotoRecord
from services.core.topology import Topology, declare_exchanges

WORKSPACE = "bench"


def free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def bench_settings() -> Settings:
    run = uuid.uuid4().hex[:10]
    return Settings(
        database_url=f"postgresql://postgres@127.0.0.1:5432/thumbwire_bench_{run}",
        namespace=f"twbench-{run}",
        s3_endpoint="http://127.0.0.1:1",  # never called: no thumbnail is asked for
        auth_secret=secrets.token_urlsafe(48),
        notifier_addr=free_address(),
        gateway_addr=free_address(),
        event_retention_s=0,
    )


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


_TOUCH = f"UPDATE photos SET updated_at = clock_timestamp() WHERE id = $1 RETURNING {PHOTO_COLUMNS}"


@dataclasses.dataclass
class Stack:
    settings: Settings
    notifier: subprocess.Popen[bytes]
    pool: asyncpg.Pool
    relay: OutboxRelay
    photo: PhotoRecord

    async def commit_event(self) -> tuple[int, float]:
        """Commits one event and publishes it; its id and the wall-clock time of the commit."""
        event = await change_photo(self.pool, _TOUCH, (self.photo.id,), EventType.PROCESSING)
        committed = time.time()
        assert event is not None
        await self.relay.drain()
        return event.id, committed


@contextlib.asynccontextmanager
async def running_stack(log_path: Path) -> AsyncIterator[Stack]:
    """The notifier process and what feeds it, until the block ends; then removes the run's
    database and exchanges."""
    settings = bench_settings()
    await database.prepare(settings.database_url)
    connection = await broker.connect(settings.amqp_url, "thumbwire-bench")
    try:
        channel = await connection.channel()
        exchanges = await declare_exchanges(channel, Topology.from_settings(settings))
        async with _pool(settings) as pool, _notifier(settings, log_path) as notifier:
            photo = await _photo(pool)
            yield Stack(settings, notifier, pool, OutboxRelay(pool, exchanges), photo)
        await _delete_exchanges(connection, [e.name for e in exchanges.values()])
    finally:
        await connection.close()
        await drop_database(settings.database_url)


@contextlib.asynccontextmanager
async def _pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await database.create_pool(settings.database_url)
    try:
        yield pool
    finally:
        await pool.close()


def start_notifier(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m services.notifier`; it inherits this process's open-files limit."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.notifier"],
            env=settings.to_env() | {"THUMBWIRE_LOG_LEVEL": "WARNING"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@contextlib.asynccontextmanager
async def _notifier(settings: Settings, log_path: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    process = start_notifier(settings, log_path)
    try:
        await _until_listening(settings.gateway_addr, process)
        yield process
    finally:
        process.terminate()
        process.wait(60)


async def _until_listening(address: str, process: subprocess.Popen[bytes]) -> None:
    host, port = address.rsplit(":", 1)
    async with asyncio.timeout(60):
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the notifier exited with {process.returncode}")
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(host, int(port))
                writer.close()
                return
            await asyncio.sleep(0.2)


async def _photo(pool: asyncpg.Pool) -> PhotoRecord:
    """One photo whose events the benchmark sends, as a photo being processed would have."""
    row = await pool.fetchrow(
        "INSERT INTO photos (id, workspace_id, item_id, filename, content_type, size_bytes,"
        " width, height) VALUES ($1, $2, 'item-1', 'p.jpg', 'image/jpeg', 3500000, 4000, 3000)"
        f" RETURNING {PHOTO_COLUMNS}",
        uuid.uuid4(),
        WORKSPACE,
    )
    return PhotoRecord.from_row(row)


async def _delete_exchanges(connection: AbstractRobustConnection, names: list[str]) -> None:
    channel = await connection.channel()
    for name in names:
        with contextlib.suppress(aio_pika.exceptions.AMQPError):
            await channel.exchange_delete(name)
