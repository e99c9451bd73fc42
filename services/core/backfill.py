"""Backfill: jobs for photos that have no thumbnails, e.g. rows imported from another system,
or photos that failed while a cause since fixed was in place."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.core.requeue import enqueue_next_attempt, requeue_failed

# Processing photos are skipped: a worker has them now.
_WITHOUT_THUMBNAILS = """
SELECT id, workspace_id, thumbnail_status, thumbnail_attempts, thumbnail_error FROM photos
 WHERE thumbnails = '[]'::jsonb AND thumbnail_status = ANY($1::text[])
   AND ($2::text IS NULL OR workspace_id = $2)
 ORDER BY created_at, id
 LIMIT $3"""


@dataclass
class BackfillReport:
    pending: int = 0  # given one more job
    failed: int = 0  # reset, as RetryThumbnails does, and given a first-attempt job


async def backfill(
    pool: asyncpg.Pool,
    workspace_id: str | None = None,
    include_failed: bool = False,
    limit: int = 10_000,
) -> BackfillReport:
    """Queues a job (through the outbox) for each pending photo without thumbnails and, with
    `include_failed`, resets each failed one. A pending photo whose job is still on its way
    gets a second one, which its claim drops or which does no harm: processing is idempotent."""
    statuses = ["pending", "failed"] if include_failed else ["pending"]
    rows = await pool.fetch(_WITHOUT_THUMBNAILS, statuses, workspace_id, limit)
    report = BackfillReport()
    for row in rows:
        if row["thumbnail_status"] == "failed":
            if await requeue_failed(pool, row["workspace_id"], row["id"]) is not None:
                report.failed += 1
            continue
        async with pool.acquire() as conn, conn.transaction():
            await enqueue_next_attempt(conn, row)
        report.pending += 1
    return report
