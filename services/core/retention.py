"""Keeping the event log to a configured age: old rows are pruned, and each workspace's
horizon (the last id pruned) says which resume points have lost history."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from services.core.database import every
from services.core.events import EventRecord, EventType, events_after

log = logging.getLogger(__name__)

# Any replica may prune; this lock makes one prune at a time.
_PRUNE_LOCK = (0x7477, 2)

# Oldest first, in id order (the primary key), so a batch never needs an index on time.
_PRUNE_BATCH = """
WITH pruned AS (
    DELETE FROM events WHERE id IN (
        SELECT id FROM events
         WHERE occurred_at < clock_timestamp() - make_interval(secs => $1)
         ORDER BY id LIMIT $2)
    RETURNING workspace_id, id
), horizons AS (
    INSERT INTO event_horizons (workspace_id, pruned_through_id)
    SELECT workspace_id, max(id) FROM pruned GROUP BY workspace_id
    ON CONFLICT (workspace_id) DO UPDATE
       SET pruned_through_id = GREATEST(event_horizons.pruned_through_id,
                                        EXCLUDED.pruned_through_id)
)
SELECT count(*) FROM pruned"""


async def prune_events(pool: asyncpg.Pool, retention_s: float, batch_size: int = 5000) -> int:
    """Deletes the events older than `retention_s`, moving each workspace's horizon; returns
    how many (0 if another replica is pruning)."""
    total = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", *_PRUNE_LOCK):
                return total
            pruned = await conn.fetchval(_PRUNE_BATCH, retention_s, batch_size)
        total += pruned
        if pruned < batch_size:
            return total


async def horizon(conn: asyncpg.Connection | asyncpg.Pool, workspace_id: str) -> int:
    """The last event id pruned from the workspace's log; 0 if none ever was."""
    found = await conn.fetchval(
        "SELECT pruned_through_id FROM event_horizons WHERE workspace_id = $1", workspace_id
    )
    return found or 0


@dataclass(frozen=True)
class LogPage:
    horizon: int  # the last id pruned from the workspace's log (0: none)
    events: list[EventRecord]


async def log_page(pool: asyncpg.Pool, workspace_id: str, after_id: int, limit: int) -> LogPage:
    """A page of the workspace's events after `after_id`, and its horizon, from one snapshot:
    a prune between the two reads cannot slip a gap past the caller."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        return LogPage(
            await horizon(conn, workspace_id),
            await events_after(conn, workspace_id, after_id, limit),
        )


def stream_reset(workspace_id: str, through_id: int) -> EventRecord:
    """The event that tells a resuming client its history was pruned: refetch state, then go
    on from this event's id (the workspace's horizon)."""
    return EventRecord(
        id=through_id,
        type=EventType.STREAM_RESET,
        workspace_id=workspace_id,
        photo_id=None,
        item_id="",
        photo=None,
        error="",
        occurred_at=datetime.now(UTC),
    )


class EventPruner:
    """Prunes every `interval_s` until cancelled; a database outage only skips a round."""

    def __init__(self, pool: asyncpg.Pool, retention_s: float, interval_s: float) -> None:
        self._pool = pool
        self._retention_s = retention_s
        self._interval_s = interval_s

    async def run(self) -> None:
        await every(self._interval_s, self.prune_once, "event pruning")

    async def prune_once(self) -> None:
        pruned = await prune_events(self._pool, self._retention_s)
        if pruned:
            log.info("pruned %d events older than %.0f s", pruned, self._retention_s)
