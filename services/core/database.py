"""PostgreSQL: creating the database when missing, applying migrations, opening pools."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from services.core import outages

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# What a query raises when PostgreSQL is down, restarting or cut off: worth a retry, and
# UNAVAILABLE (503) to a client. InternalClientError is how asyncpg reports a pooled connection
# that the server terminated in the middle of its protocol exchange.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)

# Of DATABASE_ERRORS, those that say the server cannot be reached or is going away (refused,
# cut, restarting, shutting down, out of connection slots), not that a statement failed: the
# answer to them is to wait for the server, and repeating a statement helps with no other.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)


def is_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says that PostgreSQL is out of reach for now (see _UNREACHABLE)."""
    return isinstance(exc, _UNREACHABLE)


async def when_reachable(call: Callable[[], Awaitable[_T]], wait_s: float, what: str) -> _T:
    """`call()`, tried again while it fails because PostgreSQL is out of reach, for up to
    `wait_s`; then that error is raised, as is any other at once. `what` names the work in
    the log lines that say it waits and when it goes on."""
    waiting_since: float | None = None

    def on_pause(exc: Exception, _pause_s: float) -> None:
        nonlocal waiting_since
        if waiting_since is None:
            waiting_since = time.monotonic()
            kind = type(exc).__name__
            log.warning("%s: the database is unreachable (%s: %s): waiting", what, kind, exc)

    result = await outages.ride_out(call, is_unreachable, wait_s, on_pause)
    if waiting_since is not None:
        waited_s = time.monotonic() - waiting_since
        log.info("%s: the database answered after %.1f s", what, waited_s)
    return result


# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_KEY = 0x7468756D62


async def ensure_database(database_url: str) -> None:
    """Creates the database named in the URL if it does not exist yet."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await conn.execute(f'CREATE DATABASE "{name}"')
                log.info("created database %s", name)
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                # Created by another process in the meantime: services starting together
                # race here, and the loser sees either error depending on the timing.
                pass
    finally:
        await conn.close()


async def migrate(database_url: str) -> list[str]:
    """Applies the migrations not applied yet, in name order; returns their names."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for name, sql in _migrations():
            if name in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
            log.info("applied migration %s", name)
            applied.append(name)
        return applied
    finally:
        await conn.close()


async def prepare(database_url: str) -> None:
    await ensure_database(database_url)
    await migrate(database_url)


async def create_pool(
    database_url: str, max_size: int = 10, application_name: str | None = None
) -> asyncpg.Pool:
    """`application_name` names the connections in pg_stat_activity (e.g. thumbwire-upload),
    so that an operator sees which service holds which."""
    server_settings = {"application_name": application_name} if application_name else None
    return await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=max_size,
        init=_init_connection,
        server_settings=server_settings,
        reset=_keep_session,
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a released connection needs beyond asyncpg's own part of a reset (which rolls back
    an open transaction and drops listener callbacks): nothing. The default also sends
    `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every release, a round trip
    and its work in PostgreSQL each time, for state that thumbwire never leaves on a pooled
    connection: its advisory locks are transaction-scoped, its settings transaction-local
    (`set_config(..., true)`), it opens no cursors WITH HOLD, and the outbox relay unlistens
    before it releases its connection."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


def _migrations() -> list[tuple[str, str]]:
    folder = resources.files("services.core") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name, f.read_text()) for f in files]


async def every(
    interval_s: float,
    step: Callable[[], Awaitable[object]],
    what: str,
    *,
    wait_first: bool = False,
) -> None:
    """Runs `step` every `interval_s` until cancelled: the loop of the background jobs on the
    database (sweeping, pruning). A database outage only skips a round."""
    if wait_first:
        await asyncio.sleep(interval_s)
    while True:
        try:
            await step()
        except DATABASE_ERRORS as exc:
            log.warning("%s skipped: %s", what, exc)
        await asyncio.sleep(interval_s)
