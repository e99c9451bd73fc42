"""The safety net under the outbox and the broker: photos left pending or processing for too
long, whose job is not waiting in the outbox, get a new job.

A lost job is rare (a purged queue, a broker that lost its disk, a restored database), and a
job that turns out not to be lost costs only a duplicate attempt: processing is idempotent and
the claim's status guard drops jobs that are no longer due."""

from __future__ import annotations

import logging
from collections.abc import Callable

import asyncpg

from services.core import database
from services.core.requeue import enqueue_next_attempt

log = logging.getLogger(__name__)

# Any replica may sweep; this lock makes one sweep at a time.
_SWEEP_LOCK = (0x7477, 1)

# Jobs still in the outbox are in flight (the broker may be down): not stuck. The rows found
# are locked, so an attempt that claims one meanwhile waits for the sweep to commit.
_STUCK = """
WITH in_outbox AS (
    SELECT DISTINCT (convert_from(body, 'UTF8')::jsonb ->> 'photo_id')::uuid AS photo_id
      FROM outbox WHERE exchange = 'jobs'
)
SELECT p.id, p.workspace_id, p.thumbnail_attempts, p.thumbnail_error
  FROM photos p
 WHERE p.thumbnail_status IN ('pending', 'processing')
   AND p.updated_at < clock_timestamp() - make_interval(secs => $1)
   AND NOT EXISTS (SELECT 1 FROM in_outbox o WHERE o.photo_id = p.id)
 ORDER BY p.updated_at
 LIMIT $2
   FOR UPDATE OF p SKIP LOCKED"""

# Touching updated_at gives the new job a full age to run before the next sweep looks again.
_TOUCH = "UPDATE photos SET updated_at = clock_timestamp() WHERE id = ANY($1)"


class Sweeper:
    def __init__(
        self,
        pool: asyncpg.Pool,
        age_s: float,
        interval_s: float,
        on_swept: Callable[[int], None] | None = None,
        batch_size: int = 500,
    ) -> None:
        self._pool = pool
        self._age_s = age_s
        self._interval_s = interval_s
        self._on_swept = on_swept
        self._batch_size = batch_size

    async def run(self) -> None:
        """Sweeps every interval until cancelled; a database outage only skips a round."""
        await database.every(self._interval_s, self.sweep_once, "sweep", wait_first=True)

    async def sweep_once(self) -> int:
        """Requeues the stuck photos found now; returns how many (0 if another sweeps)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, $2)", *_SWEEP_LOCK):
                return 0
            stuck = await conn.fetch(_STUCK, self._age_s, self._batch_size)
            for row in stuck:
                await enqueue_next_attempt(conn, row)
            await conn.execute(_TOUCH, [row["id"] for row in stuck])
        if stuck:
            log.warning("requeued %d photos whose jobs were lost", len(stuck))
            if self._on_swept is not None:
                self._on_swept(len(stuck))
        return len(stuck)
