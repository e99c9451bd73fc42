"""Readiness: whether this process can do its work now, i.e. its database and its broker are
reachable, and it is not draining. A probe task owned by the app checks both periodically and
tells its watchers (the gRPC health servicer) whenever the answer changes.

Liveness is another matter: a process whose database is down is alive and will recover by
itself, so it must be taken out of rotation (NOT_SERVING, 503), not restarted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from aio_pika.abc import AbstractRobustConnection

from services.core.database import DATABASE_ERRORS
from services.core.lifecycle import background

log = logging.getLogger(__name__)

Watcher = Callable[[bool], Awaitable[None]]


class Readiness:
    """Owns nothing but its state; `run()` is the probe loop, to be run as a task whose owner
    cancels it. `drain()` turns it not ready for good, before the servers stop."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        connection: AbstractRobustConnection,
        interval_s: float = 2.0,
        timeout_s: float = 2.0,
    ) -> None:
        self._pool = pool
        self._connection = connection
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._watchers: list[Watcher] = []
        self._ready = False
        self._draining = False

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def draining(self) -> bool:
        return self._draining

    def watch(self, watcher: Watcher) -> None:
        """`watcher(ready)` is awaited on every change."""
        self._watchers.append(watcher)

    async def run(self) -> None:
        """Probes every interval until cancelled or draining."""
        while not self._draining:
            await asyncio.sleep(self._interval_s)
            await self.refresh()

    async def refresh(self) -> bool:
        """Probes once now, tells the watchers if the answer changed, and returns it."""
        await self._set(await self.probe())
        return self._ready

    async def probe(self) -> bool:
        """True when the broker connection is up and the database answers `SELECT 1`."""
        if not self.broker_connected():
            return False
        try:
            async with asyncio.timeout(self._timeout_s):  # not wait_for: see core/lifecycle.py
                await self._pool.fetchval("SELECT 1")
        except DATABASE_ERRORS as exc:
            log.debug("readiness: database unreachable: %s", exc)
            return False
        return True

    def broker_connected(self) -> bool:
        # A robust connection clears `connected` while it reconnects.
        return self._connection.connected.is_set() and not self._connection.is_closed

    async def drain(self) -> None:
        """Not ready from now on, whatever the probes say: the process is stopping."""
        self._draining = True
        await self._set(False)

    async def _set(self, ready: bool) -> None:
        if self._draining and ready:
            return
        if ready == self._ready:
            return
        self._ready = ready
        if ready:
            log.info("ready: the database and the broker answer")
        elif self._draining:
            log.info("not ready: draining")
        else:
            log.warning("not ready: the database or the broker does not answer")
        for watcher in self._watchers:
            await watcher(ready)


async def start_readiness(
    pool: asyncpg.Pool,
    connection: AbstractRobustConnection,
    interval_s: float,
    stack: contextlib.AsyncExitStack,
) -> Readiness:
    """A Readiness probed once now, then every `interval_s` until `stack` closes."""
    readiness = Readiness(pool, connection, interval_s)
    await readiness.refresh()
    background(stack, readiness.run(), "readiness-probe")
    return readiness
