"""Backlog gauges read periodically: the outbox's lag (the age of its oldest row) and the
parking queue's depth (by a passive declare, which never creates the queue)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

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
    dependency is down) leaves the last value, and readiness reports the outage.

    The parking queue is read through one channel, kept open until a reading fails. A channel
    opened and closed for each reading cost four round trips to the broker a second, and its
    close is where aiormq's timeout (Python 3.11's wait_for) could swallow the task's
    cancellation and hang the thumbnailer's exit (lifecycle.py). The declare goes through
    the channel's aiormq channel: aio-pika's robust channel answers a passive declare of a
    queue it knows from its cache, with the count of the first."""

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
        self._channel: AbstractChannel | None = None

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
            await self.close()  # a failed passive declare closes its channel: a new one next

    async def parked_depth(self) -> int:
        if self._channel is None:
            self._channel = await self._connection.channel()
        underlay = await self._channel.get_underlay_channel()
        declared = await underlay.queue_declare(self._parked_queue, passive=True)
        return declared.message_count or 0

    async def close(self) -> None:
        """Closes the gauges' channel (after run() was cancelled, or after a failed reading)."""
        channel, self._channel = self._channel, None
        if channel is not None and not channel.is_closed:
            with contextlib.suppress(*BROKER_ERRORS):
                await channel.close()
