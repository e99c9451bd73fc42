"""Transactional outbox: broker messages written in the same transaction as the state they
announce, and a relay that publishes them with publisher confirms.

A photo row therefore never exists without its job, and uploads succeed while the broker is
down: the relay catches up when it returns."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from aio_pika.abc import AbstractExchange

from services.core import tracing
from services.core.broker import BROKER_ERRORS, persistent_message
from services.core.database import DATABASE_ERRORS

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "thumbwire_outbox"
# One relay publishes at a time (whichever holds this lock), so that rows reach the broker in
# id order; with the event lock, a workspace's events arrive at the notifiers in id order.
RELAY_LOCK = (0x7477, 0)
_BATCH_SIZE = 200
# The services that run a relay of their own, by their connections' application_name. Each
# NOTIFY names the writer's application_name, and a relay leaves the rows of another such
# service to that service's relay, which the same NOTIFY wakes: otherwise every relay raced for
# every row, and in the pipeline benchmark the upload service's idle relay spent 2.5 ms of CPU
# per thumbnailed photo losing those races. Rows from anyone else (the CLI, a test) wake every
# relay, and any relay's poll still publishes a row that its own relay missed.
SELF_RELAYING = frozenset({"thumbwire-upload", "thumbwire-thumbnailer"})

# A batch in one statement: the relay lock, an asynchronous commit for the batch's deletion
# (this transaction only), and the rows, deleted as they are read. It answers one row at least,
# whose `holds` says whether this relay holds the lock (the other columns are NULL when it took
# nothing). A relay wakes for nearly every event (the thumbnailer's two per photo), and each
# statement is a round trip: the lock, then a SELECT and a DELETE, were three. One row
# enqueued and relayed, medians of 12 rounds of 300: with the lock a statement of its own, the
# relay 0.95 ms of CPU and PostgreSQL 0.57; in one, 0.86 and 0.50.
#
# The asynchronous commit: PostgreSQL does not wait for, nor spend, a WAL flush per batch. A
# crash of PostgreSQL can lose only the deletions after the last synchronous commit; any row
# written later was committed synchronously, so it would have flushed them. The rows that come
# back are therefore the last ones published, and go again, in id order, as after a relay that
# dies before its commit: at least once, as before. One row enqueued and relayed, 200 times x3:
# PostgreSQL 0.50-0.55 -> 0.35-0.40 ms, the relay 0.84-0.88 -> 0.64-0.79 ms of CPU.
#
# `relay` is evaluated once (a CTE with a volatile function is materialized), and the DELETE's
# condition on it is evaluated before the DELETE reads a row.
TAKE_BATCH = """
WITH relay AS (
    SELECT pg_try_advisory_xact_lock($1, $2)
           AND set_config('synchronous_commit', 'off', true) IS NOT NULL AS holds),
taken AS (
    DELETE FROM outbox
     WHERE (SELECT holds FROM relay)
       AND id IN (SELECT id FROM outbox ORDER BY id LIMIT $3)
    RETURNING id, exchange, routing_key, body, headers)
SELECT relay.holds, taken.* FROM relay LEFT JOIN taken ON true"""

OutboxExchange = Literal["jobs", "events"]

# The relays running in this process. PostgreSQL serializes every transaction that NOTIFYs,
# database-wide, from its commit until after its WAL flush (the lock PreCommit_Notify takes to
# keep the notification queue in commit order): with a NOTIFY in each upload's statement, eight
# uploads to eight workspaces queued behind one another's fsyncs as eight uploads to one
# workspace did behind its event lock (docs/benchmarks.md, upload latency). A writer with a
# relay in its own process therefore wakes that relay itself once its statement has committed
# (events.change_photo); a NOTIFY is left to writers without one, and to writes inside a longer
# transaction, which it reaches only at their commit.
_RELAYS_HERE: set[OutboxRelay] = set()


def relays_here() -> bool:
    """Whether a relay runs in this process, to be woken by wake_relays_here()."""
    return bool(_RELAYS_HERE)


def wake_relays_here() -> None:
    """Wakes this process's relays: call after a commit that queued outbox rows without a
    NOTIFY."""
    for relay in _RELAYS_HERE:
        relay.wake()


@dataclass(frozen=True)
class OutboxMessage:
    exchange: OutboxExchange
    routing_key: str
    body: bytes
    headers: Mapping[str, Any] | None = None


async def enqueue(conn: asyncpg.Connection, message: OutboxMessage) -> None:
    """Queues a message for the relay. Call inside the transaction that makes it true. The
    current trace id goes with it (services.core.tracing); the NOTIFY names the writer's
    application_name (SELF_RELAYING)."""
    await conn.execute(
        "WITH queued AS (INSERT INTO outbox (exchange, routing_key, body, headers)"
        " VALUES ($1, $2, $3, $4) RETURNING id)"
        " SELECT pg_notify($5, current_setting('application_name')) FROM queued",
        message.exchange,
        message.routing_key,
        message.body,
        tracing.with_trace(message.headers),
        NOTIFY_CHANNEL,
    )


class OutboxRelay:
    """Publishes outbox rows in id order and deletes each only after the broker confirmed it."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        exchanges: Mapping[str, AbstractExchange],
        poll_interval_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._exchanges = exchanges
        self._poll_interval_s = poll_interval_s
        self._wakeup = asyncio.Event()
        self._application_name = ""  # its listener's, once it listens

    async def run(self) -> None:
        """Publishes until cancelled; wakes on NOTIFY and polls in case a notification is lost.
        A lost database connection (a restart) is replaced, and meanwhile polling goes on."""
        _RELAYS_HERE.add(self)
        try:
            while True:
                try:
                    listener = await self._pool.acquire()
                except DATABASE_ERRORS as exc:
                    log.warning("outbox relay cannot reach the database: %s", exc)
                    await asyncio.sleep(self._poll_interval_s)
                    continue
                try:
                    await self._relay_while_listening(listener)
                finally:
                    with contextlib.suppress(*DATABASE_ERRORS):
                        await listener.remove_listener(NOTIFY_CHANNEL, self._on_notify)
                    with contextlib.suppress(*DATABASE_ERRORS):
                        await self._pool.release(listener)
        finally:
            _RELAYS_HERE.discard(self)

    def wake(self) -> None:
        """Publishes what there is now, without waiting for a NOTIFY or the poll."""
        self._wakeup.set()

    async def _relay_while_listening(self, listener: asyncpg.Connection) -> None:
        self._application_name = getattr(listener.get_settings(), "application_name", "")
        try:
            await listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except DATABASE_ERRORS as exc:
            log.warning("outbox relay cannot listen for notifications: %s", exc)
        while _is_open(listener):
            await self._drain_safely()
            # Not wait_for, which in Python 3.11 can swallow a cancellation (lifecycle.py).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval_s):
                    await self._wakeup.wait()
            self._wakeup.clear()

    async def drain(self) -> int:
        """Publishes every row there is now; returns how many."""
        total = 0
        while True:
            published = await self.publish_batch()
            if published is None:  # another relay holds the lock: let it finish
                await asyncio.sleep(0.05)
                continue
            total += published
            if published < _BATCH_SIZE:
                return total

    async def publish_batch(self) -> int | None:
        """Publishes one batch; None when another relay is publishing. The batch is deleted
        as it is read, and the deletion commits only if every row was confirmed: a failure
        rolls it back, and the rows already published go again (at least once)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(TAKE_BATCH, *RELAY_LOCK, _BATCH_SIZE)
            if not rows[0]["holds"]:
                return None
            taken = sorted((r for r in rows if r["id"] is not None), key=lambda r: r["id"])
            for row in taken:
                await self._publish(row)
            return len(taken)

    async def _publish(self, row: asyncpg.Record) -> None:
        message = persistent_message(row["body"], f"outbox-{row['id']}", row["headers"])
        # A job nobody can receive must stay in the outbox; an event nobody listens to is
        # still in the event log, so it need not be routed.
        mandatory = row["exchange"] == "jobs"
        await self._exchanges[row["exchange"]].publish(
            message, routing_key=row["routing_key"], mandatory=mandatory
        )

    async def _drain_safely(self) -> None:
        try:
            count = await self.drain()
            if count:
                log.debug("relayed %d outbox rows", count)
        except (*BROKER_ERRORS, *DATABASE_ERRORS) as exc:
            log.warning("outbox relay will retry: %s", exc)
            await asyncio.sleep(self._poll_interval_s)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, writer: str) -> None:
        if wakes(self._application_name, writer):
            self.wake()


def wakes(relay: str, writer: str) -> bool:
    """Whether a relay running under application_name `relay` publishes a row that `writer`
    just queued: its own, and those of anyone without a relay of their own."""
    return writer == relay or writer not in SELF_RELAYING


def _is_open(conn: asyncpg.Connection) -> bool:
    # The pool detaches a connection it has seen die; asking it anything then raises.
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


def json_body(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()
