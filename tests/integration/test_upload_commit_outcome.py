"""An upload whose database connection is lost around the commit, against the real database
and S3: the original is removed only when the row is certainly not there."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from thumbwire.v1 import photos_pb2

from services.core.errors import Unavailable
from services.core.photos import PhotoRecord, original_key
from services.core.storage import ObjectNotFound, ObjectStore
from services.upload.catalogue import Catalogue, NewPhoto
from services.upload.photo_service import PhotoService, UploadLimits
from tests.support import images
from tests.support.uploads import upload_requests

LOST = "connection was closed in the middle of operation"
LIMITS = UploadLimits(max_upload_bytes=10_000_000, max_pixels=100_000_000)


class CommitThenLoseConnection(Catalogue):
    """The real catalogue, whose connection is lost after the commit: the client sees an error
    although the row is there (the outcome a dropped COMMIT acknowledgement leaves)."""

    async def add(self, new: NewPhoto) -> PhotoRecord | None:
        await super().add(new)
        raise asyncpg.ConnectionDoesNotExistError(
            "connection was closed in the middle of operation"
        )


class LoseConnectionBeforeCommit(Catalogue):
    attempted: NewPhoto | None = None

    async def add(self, new: NewPhoto) -> PhotoRecord | None:
        self.attempted = new
        raise asyncpg.ConnectionDoesNotExistError(
            "connection was closed in the middle of operation"
        )


def requests(workspace_id: str) -> object:
    metadata = photos_pb2.UploadMetadata(workspace_id=workspace_id, item_id="item-1")
    return upload_requests(images.jpeg(200, 100), metadata)


async def test_a_commit_that_went_through_answers_with_the_photo_and_keeps_its_original(
    pool: asyncpg.Pool, store: ObjectStore
) -> None:
    ws = f"ws-{uuid.uuid4().hex[:8]}"
    service = PhotoService(CommitThenLoseConnection(pool), store, LIMITS)

    photo = await service.upload(requests(ws))

    assert photo.workspace_id == ws and photo.thumbnail_status == "pending"
    await store.stat(original_key(ws, photo.id))  # still there


async def test_a_commit_that_did_not_happen_is_unavailable_and_removes_the_original(
    pool: asyncpg.Pool, store: ObjectStore
) -> None:
    ws = f"ws-{uuid.uuid4().hex[:8]}"
    catalogue = LoseConnectionBeforeCommit(pool)
    service = PhotoService(catalogue, store, LIMITS)

    with pytest.raises(Unavailable, match="nothing was stored"):
        await service.upload(requests(ws))

    assert catalogue.attempted is not None
    assert await pool.fetchval("SELECT count(*) FROM photos WHERE workspace_id = $1", ws) == 0
    with pytest.raises(ObjectNotFound):
        await store.stat(original_key(ws, catalogue.attempted.id))
