"""The corpus through the real services: uploaded over gRPC to the upload service, thumbnailed
by the thumbnailer (both in-process, on a namespace of their own), and each file's outcome
checked where a client sees it: thumbnails and their colours, the error at upload, or a photo
that failed at once, without retries."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import grpc
import pytest
from PIL import Image
from thumbwire.v1 import photos_pb2, photos_pb2_grpc

from services.core.config import Settings
from services.core.events import EventType, events_after
from services.core.jobs import ThumbnailJob
from services.core.photos import PhotoRecord, ThumbnailSize, fetch_photo, thumbnail_key
from services.core.storage import ObjectStore
from services.thumbnailer import app as thumbnailer_app
from services.thumbnailer.processing import Outcome, ThumbnailProcessor
from services.thumbnailer.rendering import ImageLimits, RenderPool
from services.upload import app as upload_app
from tests.support import corpus
from tests.support.auth import bearer, token_for
from tests.support.images import animated_gif, encode, marked, with_orientation
from tests.support.ports import free_address
from tests.support.seed import seed_photo
from tests.support.services import serving
from tests.support.uploads import upload
from tests.support.worker_tasks import STAND_IN, spin_noting_pid_in

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
WAIT_S = 30.0


@contextlib.asynccontextmanager
async def services(settings: Settings, name: str) -> AsyncIterator:
    """The upload service and the thumbnailer on a namespace of their own; a PhotoService stub."""
    own = dataclasses.replace(
        settings,
        namespace=f"{settings.namespace}-{name}",
        upload_addr=free_address(),
        thumbnailer_metrics_addr=free_address(),
    )
    async with (
        serving(upload_app.serve, own),
        serving(thumbnailer_app.serve, own),
        grpc.aio.insecure_channel(own.upload_addr) as channel,
    ):
        await asyncio.wait_for(channel.channel_ready(), 15)
        yield CorpusClient(photos_pb2_grpc.PhotoServiceStub(channel), own)


@dataclasses.dataclass
class CorpusClient:
    photos: photos_pb2_grpc.PhotoServiceStub
    settings: Settings

    async def upload(self, workspace: str, data: bytes, filename: str) -> photos_pb2.Photo:
        metadata = bearer(token_for(self.settings, workspace))
        return await upload(
            self.photos, workspace, "item-1", data, filename=filename, call_metadata=metadata
        )


@pytest.fixture(scope="module")
async def stub(settings: Settings, pool: asyncpg.Pool, store: ObjectStore):
    async with services(settings, "corpus") as photo_service:
        yield photo_service


async def upload_and_wait(stub, pool: asyncpg.Pool, data: bytes, filename: str) -> PhotoRecord:
    workspace = f"ws-{uuid.uuid4().hex[:8]}"
    sent = await stub.upload(workspace, data, filename)
    async with asyncio.timeout(WAIT_S):
        while True:
            photo = await fetch_photo(pool, workspace, uuid.UUID(sent.id))
            if photo is not None and photo.thumbnail_status in ("complete", "failed"):
                return photo
            await asyncio.sleep(0.05)


async def thumbnail(store: ObjectStore, photo: PhotoRecord, size: ThumbnailSize) -> Image.Image:
    image = Image.open(
        io.BytesIO(await store.get(thumbnail_key(photo.workspace_id, photo.id, size)))
    )
    assert image.format == "WEBP"
    image.load()
    return image


def transparent_palette_png() -> bytes:
    image = Image.new("P", (600, 300), 0)
    image.putpalette([255, 255, 255, 0, 128, 0] + [0] * 762)
    image.paste(1, (0, 0, 300, 300))
    return encode(image, "PNG", transparency=0)


# name -> (file, displayed size, expected small-thumbnail pixel at (10, 10) and at the centre)
GOOD = {
    "jpeg-orientation-8": (with_orientation(marked(1200, 800), 8), (1200, 800), RED, BLUE),
    "cmyk-jpeg": (
        encode(Image.new("CMYK", (900, 600), (255, 0, 0, 0)), "JPEG", quality=95),
        (900, 600),
        (0, 255, 255),
        (0, 255, 255),
    ),
    "palette-png-transparent": (transparent_palette_png(), (600, 300), (0, 128, 0, 255), None),
    "animated-gif": (animated_gif(300, 200, [GREEN, RED, BLUE]), (300, 200), GREEN, GREEN),
    "heic": (corpus.heic(marked(1200, 800)), (1200, 800), RED, BLUE),
    "avif": (corpus.avif(marked(1200, 800)), (1200, 800), RED, BLUE),
}


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 24) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


@pytest.mark.parametrize("name", list(GOOD))
async def test_a_good_file_gets_its_thumbnails_and_placeholder(
    name: str, stub, pool: asyncpg.Pool, store: ObjectStore
) -> None:
    data, displayed, corner, centre = GOOD[name]
    photo = await upload_and_wait(stub, pool, data, f"{name}.bin")

    assert photo.thumbnail_status == "complete", photo.thumbnail_error
    assert (photo.width, photo.height) == displayed
    assert photo.thumbnail_attempts == 1
    assert {t.size: max(t.width, t.height) for t in photo.thumbnails} == {
        ThumbnailSize.LARGE: min(800, max(displayed)),
        ThumbnailSize.MEDIUM: min(400, max(displayed)),
        ThumbnailSize.SMALL: 150,
    }
    small = await thumbnail(store, photo, ThumbnailSize.SMALL)
    pixel = small.getpixel((10, 10))
    assert close_to(pixel[: len(corner)], corner), pixel
    if centre is not None:
        middle = small.convert("RGB").getpixel((small.width // 2, small.height * 3 // 4))
        assert close_to(middle, centre), middle
    assert photo.placeholder
    [ready] = [
        e
        for e in await events_after(pool, photo.workspace_id, 0)
        if e.type == "photo.thumbnail_ready"
    ]
    assert ready.photo is not None and ready.photo.placeholder == photo.placeholder


@pytest.mark.parametrize(
    ("data", "filename", "reason"),
    [
        (b"", "empty.jpg", "no image bytes"),
        (corpus.NOT_AN_IMAGE, "holiday.jpg", "not an image of an accepted format"),
        (corpus.bilevel_png(20_000, 20_000), "bomb.png", "too many pixels"),
        (corpus.jpeg_claiming_size(65_000, 65_000), "huge.jpg", "too many pixels"),
    ],
    ids=["zero-bytes", "text-named-jpg", "400-megapixel-png-bomb", "jpeg-claiming-65000x65000"],
)
async def test_a_hostile_file_is_refused_at_upload(
    data: bytes, filename: str, reason: str, stub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.upload(f"ws-{uuid.uuid4().hex[:8]}", data, filename)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in (raised.value.details() or "")


async def test_a_truncated_jpeg_fails_permanently_without_retries(stub, pool: asyncpg.Pool) -> None:
    """Its header is fine, so the upload takes it; the decode can never work."""
    photo = await upload_and_wait(stub, pool, corpus.truncated_jpeg(), "cut.jpg")
    await assert_failed_once(pool, photo, "could not be decoded")


async def test_an_image_over_the_time_limit_fails_permanently_without_retries(
    pool: asyncpg.Pool, store: ObjectStore, tmp_path: Path
) -> None:
    """The thumbnailer's processor over workers that hang on this original, as a hostile file
    could make them: the worker is killed at the limit and the photo fails at once."""
    renderer = RenderPool(1, ImageLimits(time_limit_s=1.0), task=STAND_IN)
    photo = await seed_photo(pool, store, spin_noting_pid_in(tmp_path / "pid"), enqueue=False)
    try:
        processor = ThumbnailProcessor(pool, store, renderer)
        outcome = await processor.process(ThumbnailJob(photo.workspace_id, photo.id))
    finally:
        await renderer.close()
    assert outcome == Outcome.FAILED
    failed = await fetch_photo(pool, photo.workspace_id, photo.id)
    assert failed is not None
    await assert_failed_once(pool, failed, "longer than the limit of 1 s")


async def assert_failed_once(pool: asyncpg.Pool, photo: PhotoRecord, reason: str) -> None:
    assert photo.thumbnail_status == "failed"
    assert photo.thumbnail_attempts == 1
    assert reason in photo.thumbnail_error
    # A transient failure would have recorded photo.thumbnail_retrying, not failed the photo.
    events = await events_after(pool, photo.workspace_id, 0)
    types = [e.type for e in events]
    assert types.count(EventType.FAILED) == 1 and EventType.RETRYING not in types
    assert events[-1].type == EventType.FAILED and events[-1].error == photo.thumbnail_error
