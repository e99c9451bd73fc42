"""One attempt at a time per photo in this process.

A job can arrive twice (the outbox relays at least once; a dead thumbnailer's prefetched jobs
come back). A photo being processed can be claimed again, since that is how the job of a
killed attempt takes over, so two deliveries of one job running side by side would both claim
it: two attempts counted, both rendered. With more jobs taken than image workers, both can be
in one process; here the later one waits, then finds the photo done and is dropped."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator


class PhotoLocks:
    def __init__(self) -> None:
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._holders: dict[uuid.UUID, int] = {}  # waiting or holding, so a lock in use stays

    @contextlib.asynccontextmanager
    async def hold(self, photo_id: uuid.UUID) -> AsyncIterator[None]:
        lock = self._locks.setdefault(photo_id, asyncio.Lock())
        self._holders[photo_id] = self._holders.get(photo_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._holders[photo_id] -= 1
            if not self._holders[photo_id]:
                del self._holders[photo_id], self._locks[photo_id]

    def __len__(self) -> int:
        """Photos with an attempt running or waiting."""
        return len(self._locks)
