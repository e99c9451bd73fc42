"""Backlog gauges read periodically: the outbox's lag (the age of its oldest row) and the
parking queue's depth (by a passive declare, which never creates the queue)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aio_pika.abc import AbstractRobustConnection

from services.core.broker import BROKER_ERRORS
from services.core.database import DATABASE_ERRORS
from services.thumbnailer.metrics import ThumbnailerMetrics

log = logging.getLogger(__name__)

OUTBOX_LAG_SQL = (
    "SELECT coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)::float8"
    " FROM outbox"
)


class BacklogGauges:
    """Updates the gauges every `interval_s` until cancelled; a reading that fails (a
    dependency is down) leaves the last value, and readiness reports the outage."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        connection: AbstractRobustConnection,
        parked_queue: str,
        metrics: ThumbnailerMetrics,
        interval_s: float,
    ) -> None:
        self._pool = pool
        self._connection = connection
        self._parked_queue = parked_queue
        self._metrics = metrics
        self._interval_s = interval_s

    async def run(self) -> None:
        while True:
            await self.update()
            await asyncio.sleep(self._interval_s)

    async def update(self) -> None:
        try:
            self._metrics.outbox_lag_seconds.set(await self._pool.fetchval(OUTBOX_LAG_SQL))
        except DATABASE_ERRORS as exc:
            log.debug("outbox lag not read: %s", exc)
        try:
            self._metrics.parked_jobs.set(await self.parked_depth())
        except BROKER_ERRORS as exc:
            log.debug("parking queue depth not read: %s", exc)

    async def parked_depth(self) -> int:
        # A channel of its own each time: a failed passive declare closes its channel.
        async with self._connection.channel() as channel:
            queue = await channel.declare_queue(self._parked_queue, passive=True)
            return queue.declaration_result.message_count or 0
