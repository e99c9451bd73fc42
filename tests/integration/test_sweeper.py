"""The sweeper against the real database: photos whose job was lost get a new one, photos
whose job waits in the outbox do not, and a swept photo is not swept again at once."""

from __future__ import annotations

import json
import uuid

import asyncpg

from services.core.events import EventType
from services.core.jobs import ATTEMPT_HEADER, ERROR_HEADER
from services.core.photos import PhotoRecord, ThumbnailStatus
from services.core.storage import ObjectStore
from services.thumbnailer.processing import Outcome
from services.thumbnailer.sweeper import Sweeper
from tests.support.images import jpeg
from tests.support.seed import enqueue, seed_photo, set_thumbnail_state
from tests.support.thumbnailing import Thumbnailer, photo_events, wait_for_status

AGE_S = 60.0


async def _age(pool: asyncpg.Pool, photo: PhotoRecord, seconds: float) -> None:
    await pool.execute(
        "UPDATE photos SET updated_at = clock_timestamp() - make_interval(secs => $2)"
        " WHERE id = $1",
        photo.id,
        seconds,
    )


async def _queued_jobs(pool: asyncpg.Pool, photo_id: uuid.UUID) -> list[dict]:
    """The headers of the photo's jobs waiting in the outbox."""
    rows = await pool.fetch(
        "SELECT body, headers FROM outbox WHERE exchange = 'jobs' AND routing_key = 'thumbnail'"
    )
    return [r["headers"] for r in rows if json.loads(r["body"])["photo_id"] == str(photo_id)]


async def test_a_stuck_photo_gets_a_new_job_and_one_still_queued_does_not(
    pool: asyncpg.Pool, store: ObjectStore
) -> None:
    lost = await seed_photo(pool, store, jpeg(200, 100), enqueue=False)
    await set_thumbnail_state(pool, lost.id, "processing", 2, "storage error: boom")
    await _age(pool, lost, AGE_S * 2)
    queued = await seed_photo(pool, store, jpeg(200, 100))  # no relay runs: it stays queued
    await _age(pool, queued, AGE_S * 2)
    recent = await seed_photo(pool, store, jpeg(200, 100), enqueue=False)
    sweeper = Sweeper(pool, AGE_S, interval_s=3600)

    assert await sweeper.sweep_once() >= 1

    assert await _queued_jobs(pool, lost.id) == [
        {ATTEMPT_HEADER: 3, ERROR_HEADER: "storage error: boom"}
    ]
    assert len(await _queued_jobs(pool, queued.id)) == 1  # only its own job
    assert await _queued_jobs(pool, recent.id) == []
    await sweeper.sweep_once()  # touched by the first sweep: not stuck again yet
    assert len(await _queued_jobs(pool, lost.id)) == 1


async def test_a_swept_photo_is_completed_by_the_thumbnailer(
    pool: asyncpg.Pool, store: ObjectStore, thumbnailer: Thumbnailer
) -> None:
    photo = await seed_photo(pool, store, jpeg(300, 200), enqueue=False)
    await _age(pool, photo, AGE_S * 2)

    await Sweeper(pool, AGE_S, interval_s=3600).sweep_once()

    done = await wait_for_status(pool, photo)
    assert done.thumbnail_status == ThumbnailStatus.COMPLETE
    assert done.thumbnail_attempts == 1


async def test_a_photo_that_used_every_attempt_is_failed_not_tried_again(
    pool: asyncpg.Pool, store: ObjectStore, thumbnailer: Thumbnailer
) -> None:
    photo = await seed_photo(pool, store, jpeg(300, 200), enqueue=False)
    await set_thumbnail_state(pool, photo.id, "processing", 5, "storage error: gone")
    await _age(pool, photo, AGE_S * 2)

    await Sweeper(pool, AGE_S, interval_s=3600).sweep_once()

    done = await wait_for_status(pool, photo)
    assert done.thumbnail_status == ThumbnailStatus.FAILED
    assert (done.thumbnail_attempts, done.thumbnail_error) == (5, "storage error: gone")


async def test_a_duplicate_job_as_a_needless_sweep_makes_completes_the_photo_once(
    pool: asyncpg.Pool, store: ObjectStore, thumbnailer: Thumbnailer
) -> None:
    photo = await seed_photo(pool, store, jpeg(300, 200))
    await enqueue(pool, photo)  # the job was only slow, and swept anyway
    done = await wait_for_status(pool, photo)

    assert done.thumbnail_status == ThumbnailStatus.COMPLETE
    assert sorted(await thumbnailer.outcomes(done, 2)) == [Outcome.COMPLETED, Outcome.DROPPED]
    ready = [e for e in await photo_events(pool, photo) if e.type == EventType.READY]
    assert len(ready) == 1
