"""`thumbwire dlq list|replay` and `thumbwire backfill` as an operator runs them, against the
real broker and database.

No service of another namespace runs beside these tests: its outbox relay would publish the
jobs these commands queue to its own namespace, where no thumbnailer of theirs listens."""

from __future__ import annotations

import dataclasses
import json

import asyncpg

from services.core.config import Settings
from services.core.photos import ThumbnailStatus, original_key
from services.core.storage import ObjectStore
from tests.support.cli import thumbwire
from tests.support.images import jpeg
from tests.support.seed import enqueue, seed_photo, set_thumbnail_state
from tests.support.thumbnailing import Thumbnailer, wait_for_status, wait_until


async def parked(settings: Settings) -> dict[str, dict]:
    result = await thumbwire(settings, "dlq", "list", "--json")
    assert result.returncode == 0, result.stderr
    return {entry["photo_id"]: entry for entry in map(json.loads, result.stdout.splitlines())}


async def test_a_parked_job_is_listed_and_replayed_once_its_cause_is_fixed(
    settings: Settings, pool: asyncpg.Pool, store: ObjectStore, thumbnailer: Thumbnailer
) -> None:
    data = jpeg(320, 240)
    photo = await seed_photo(pool, store, data, enqueue=False)
    key = original_key(photo.workspace_id, photo.id)
    await store.delete_many([key])
    await enqueue(pool, photo)
    failed = await wait_for_status(pool, photo)
    assert failed.thumbnail_status == ThumbnailStatus.FAILED

    async def listed() -> bool:
        return str(photo.id) in await parked(settings)

    await wait_until(listed)
    entry = (await parked(settings))[str(photo.id)]
    assert entry["workspace_id"] == photo.workspace_id
    assert (entry["attempts"], entry["error"]) == (1, "the original is missing from storage")
    assert entry["parked_at"]

    await store.put(key, data, "image/jpeg")  # the operator fixes the cause
    result = await thumbwire(settings, "dlq", "replay", "--photo", str(photo.id))

    assert result.returncode == 0, result.stderr
    assert "replayed 1;" in result.stdout
    done = await wait_for_status(pool, photo)
    assert done.thumbnail_status == ThumbnailStatus.COMPLETE
    assert done.thumbnail_attempts == 1
    assert str(photo.id) not in await parked(settings)


async def test_replaying_a_photo_that_is_not_parked_says_so(settings: Settings) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    result = await thumbwire(settings, "dlq", "replay", "--photo", missing)
    assert result.returncode == 1
    assert f"not parked: {missing}" in result.stdout


async def test_replay_without_saying_which_is_refused(settings: Settings) -> None:
    result = await thumbwire(settings, "dlq", "replay")
    assert result.returncode == 2
    assert "one of the arguments --all --photo is required" in result.stderr


async def test_a_namespace_without_a_parking_queue_is_told_so(settings: Settings) -> None:
    nowhere = dataclasses.replace(settings, namespace=f"{settings.namespace}-never-ran")
    result = await thumbwire(nowhere, "dlq", "list")
    assert result.returncode == 1
    assert f"there is no queue {nowhere.namespace}.thumbnail.parked" in result.stderr


async def test_backfill_queues_photos_without_thumbnails_and_they_complete(
    settings: Settings, pool: asyncpg.Pool, store: ObjectStore, thumbnailer: Thumbnailer
) -> None:
    ws = "cli-backfill"
    imported = await seed_photo(pool, store, jpeg(320, 240), ws, enqueue=False)
    failed = await seed_photo(pool, store, jpeg(320, 240), ws, enqueue=False)
    await set_thumbnail_state(pool, failed.id, "failed", 5, "storage error: gone")

    result = await thumbwire(settings, "backfill", "--workspace", ws)
    assert (result.returncode, result.stdout.strip()) == (0, "queued 1 pending and 0 failed photos")
    done = await wait_for_status(pool, imported)
    assert done.thumbnail_status == ThumbnailStatus.COMPLETE

    result = await thumbwire(settings, "backfill", "--workspace", ws, "--include-failed")
    assert result.stdout.strip() == "queued 0 pending and 1 failed photos"
    done = await wait_for_status(pool, failed)
    assert (done.thumbnail_status, done.thumbnail_attempts) == (ThumbnailStatus.COMPLETE, 1)
