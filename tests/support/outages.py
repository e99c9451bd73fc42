"""Real faults and health checks for readiness tests: a database of a test's own that stops
accepting connections (as during a PostgreSQL restart), a lock held as by a slow transaction,
and polling a health answer."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.core.config import Settings

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
WAIT_S = 20.0


class OwnDatabase:
    """A database only the service under test uses, so that cutting it off harms no other."""

    def __init__(self, admin: asyncpg.Pool, settings: Settings) -> None:
        self.name = f"thumbwire_ready_{uuid.uuid4().hex[:8]}"
        self._admin = admin
        self.url = settings.database_url.rsplit("/", 1)[0] + f"/{self.name}"

    async def refuse_connections(self) -> None:
        """New connections are refused and the open ones are cut."""
        await self._admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
        await self._admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", self.name
        )

    async def allow_connections(self) -> None:
        await self._admin.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    async def drop(self) -> None:
        await self.allow_connections()
        await self._admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def own_database(admin: asyncpg.Pool, settings: Settings) -> AsyncIterator[OwnDatabase]:
    database = OwnDatabase(admin, settings)
    try:
        yield database
    finally:
        await database.drop()


def with_database(settings: Settings, database: OwnDatabase, **changes: object) -> Settings:
    return dataclasses.replace(settings, database_url=database.url, **changes)


class HeldLock:
    """A lock that a transaction of the test's own holds (on `holder`)."""

    def __init__(self, holder: asyncpg.Connection, observer: asyncpg.Connection) -> None:
        self._holder_pid = holder.get_server_pid()
        # Another session: inside the holder's transaction, pg_stat_activity would be the
        # snapshot taken at its first read.
        self._observer = observer

    async def waiters(self) -> int:
        """How many sessions wait for it: a service's work stuck behind it, in flight."""
        return await self._observer.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
            self._holder_pid,
        )


@contextlib.asynccontextmanager
async def holding_lock(database_url: str, statement: str, *args: object) -> AsyncIterator[HeldLock]:
    """Runs `statement` (say, SELECT ... FOR UPDATE, or LOCK TABLE) in a transaction that stays
    open until the block ends: whatever a service does that needs the lock waits until then,
    as it would behind a slow transaction, and so holds its job or call in flight."""
    holder = await asyncpg.connect(database_url)
    observer = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute(statement, *args)
            yield HeldLock(holder, observer)
    finally:
        await observer.close()
        await holder.close()


async def grpc_health(address: str) -> int | None:
    """The overall health status a gRPC server reports; None while it cannot be reached."""
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.UNAVAILABLE:
                return None
            raise
        return reply.status


async def http_status(url: str) -> int:
    """The status of GET `url`; 0 while nothing listens there (the server is starting)."""
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status
    except aiohttp.ClientConnectionError:
        return 0


async def until(
    check: Callable[[], Awaitable[object]], expected: object, timeout_s: float = WAIT_S
) -> None:
    """Polls `check()` until it returns `expected`; fails after `timeout_s` with the last
    answer."""
    last: object = None

    async def poll() -> None:
        nonlocal last
        while True:
            last = await check()
            if last == expected:
                return
            await asyncio.sleep(0.1)

    try:
        await asyncio.wait_for(poll(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"still {last!r}, expected {expected!r}") from None
