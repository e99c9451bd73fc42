"""The upload service in-process, against the real PostgreSQL, RabbitMQ and S3 server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from thumbwire.v1 import photos_pb2

from services.core.config import Settings
from services.core.photos import original_key
from services.core.storage import ObjectNotFound, ObjectStore
from services.core.topology import Topology
from tests.support import images
from tests.support.ports import free_address
from tests.support.seed import set_thumbnail_state
from tests.support.services import UploadService, running_upload
from tests.support.uploads import upload, upload_requests

MAX_BYTES = 300_000
MAX_PIXELS = 4_000_000


@pytest.fixture(scope="module")
async def service(settings: Settings, pool: asyncpg.Pool, store: ObjectStore):
    # A namespace of its own, so that no other test's consumer takes this module's jobs.
    own = dataclasses.replace(
        settings,
        namespace=f"{settings.namespace}-upload",
        upload_addr=free_address(),
        max_upload_bytes=MAX_BYTES,
        max_pixels=MAX_PIXELS,
    )
    async with running_upload(own) as svc:
        yield svc


def workspace() -> str:
    return f"ws-{uuid.uuid4().hex[:8]}"


async def photo_count(pool: asyncpg.Pool, workspace_id: str) -> int:
    return await pool.fetchval("SELECT count(*) FROM photos WHERE workspace_id = $1", workspace_id)


async def expect_status(call, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    return caught.value.details() or ""


async def test_upload_stores_original_and_records_pending_photo(
    service: UploadService, pool: asyncpg.Pool, store: ObjectStore
) -> None:
    ws = workspace()
    data = images.jpeg(640, 480, orientation=6)
    photo = await upload(
        service.stub_for(ws),
        ws,
        "item-1",
        data,
        filename="../../etc/cat.txt",
        content_type="text/plain",
        caption="a cat",
    )
    assert photo.thumbnail_status == photos_pb2.THUMBNAIL_STATUS_PENDING
    assert (photo.workspace_id, photo.item_id, photo.caption) == (ws, "item-1", "a cat")
    assert photo.content_type == "image/jpeg"  # sniffed, not the client's text/plain
    assert photo.filename == "cat.txt"
    assert (photo.width, photo.height) == (480, 640)  # EXIF orientation 6 turns it upright
    assert photo.size_bytes == len(data)
    assert not photo.thumbnails
    photo_id = uuid.UUID(photo.id)
    assert await store.get(original_key(ws, photo_id)) == data
    events = await pool.fetch("SELECT type FROM events WHERE photo_id = $1", photo_id)
    assert [e["type"] for e in events] == ["photo.uploaded"]


async def test_relay_publishes_the_job(service: UploadService, amqp) -> None:
    topo = Topology.from_settings(service.settings)
    ws = workspace()
    photo = await upload(service.stub_for(ws), ws, "item-1", images.jpeg(64, 48))
    channel = await amqp.channel()
    queue = await channel.get_queue(topo.jobs_queue)
    found = None
    for _ in range(100):
        message = await queue.get(fail=False)
        if message is None:
            await asyncio.sleep(0.1)
            continue
        await message.ack()
        body = json.loads(message.body)
        if body["photo_id"] == photo.id:
            found = (body, message.headers)
            break
    await channel.close()
    assert found is not None, "the job never reached the jobs queue"
    assert found[0]["workspace_id"] == ws
    assert found[1]["x-thumbwire-attempt"] == 1


async def test_too_large_is_resource_exhausted_and_stores_nothing(
    service: UploadService, pool: asyncpg.Pool
) -> None:
    ws = workspace()
    meta = photos_pb2.UploadMetadata(workspace_id=ws, item_id="i")
    data = images.jpeg(64, 64) + b"\0" * MAX_BYTES
    details = await expect_status(
        service.stub_for(ws).UploadPhoto(upload_requests(data, meta)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    )
    assert str(MAX_BYTES) in details
    assert await photo_count(pool, ws) == 0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"hello, this is not an image at all", "not an image"),
        (images.png(2100, 2000, mode="L"), "pixels"),
        (images.jpeg(64, 64)[:40], "unreadable"),
    ],
    ids=["text", "too-many-pixels", "truncated-header"],
)
async def test_bad_image_is_invalid_argument_and_stores_nothing(
    service: UploadService, pool: asyncpg.Pool, data: bytes, reason: str
) -> None:
    ws = workspace()
    meta = photos_pb2.UploadMetadata(workspace_id=ws, item_id="i", filename="x.jpg")
    details = await expect_status(
        service.stub_for(ws).UploadPhoto(upload_requests(data, meta)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert reason in details
    assert await photo_count(pool, ws) == 0


@pytest.mark.parametrize(
    ("metadata", "data", "reason"),
    [
        (None, b"chunk first", "first UploadPhotoRequest must carry metadata"),
        (photos_pb2.UploadMetadata(item_id="i"), b"x", "workspace_id is required"),
        (photos_pb2.UploadMetadata(workspace_id="w/../x", item_id="i"), b"x", "workspace_id"),
        (photos_pb2.UploadMetadata(workspace_id="w"), b"x", "item_id is required"),
        (photos_pb2.UploadMetadata(workspace_id="w", item_id="i"), b"", "no image bytes"),
        (
            photos_pb2.UploadMetadata(workspace_id="w", item_id="i", caption="c" * 2001),
            b"x",
            "caption",
        ),
    ],
    ids=["no-metadata", "no-workspace", "bad-workspace", "no-item", "no-bytes", "long-caption"],
)
async def test_bad_requests_are_invalid_argument(
    service: UploadService, metadata, data: bytes, reason: str
) -> None:
    details = await expect_status(
        service.stub_for("w").UploadPhoto(upload_requests(data, metadata)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert reason in details


async def test_metadata_twice_is_invalid_argument(service: UploadService) -> None:
    meta = photos_pb2.UploadMetadata(workspace_id="w", item_id="i")

    async def requests():
        yield photos_pb2.UploadPhotoRequest(metadata=meta)
        yield photos_pb2.UploadPhotoRequest(metadata=meta)

    details = await expect_status(
        service.stub_for("w").UploadPhoto(requests()), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert "only the first" in details


async def test_idempotency_key_returns_the_first_upload(
    service: UploadService, pool: asyncpg.Pool
) -> None:
    ws = workspace()
    first, second = await asyncio.gather(
        *[
            upload(service.stub_for(ws), ws, "i", images.jpeg(32, 32), idempotency_key="k-1")
            for _ in range(2)
        ]
    )
    third = await upload(service.stub_for(ws), ws, "i", images.jpeg(32, 32), idempotency_key="k-1")
    assert first.id == second.id == third.id
    assert await photo_count(pool, ws) == 1


async def test_get_photo(service: UploadService) -> None:
    ws, other = workspace(), workspace()
    photo = await upload(service.stub_for(ws), ws, "i", images.jpeg(32, 32))
    got = await service.stub_for(ws).GetPhoto(
        photos_pb2.GetPhotoRequest(workspace_id=ws, photo_id=photo.id)
    )
    assert got == photo
    # Asked for under another workspace the caller may read: no such photo there.
    await expect_status(
        service.stub_for(ws, other).GetPhoto(
            photos_pb2.GetPhotoRequest(workspace_id=other, photo_id=photo.id)
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    details = await expect_status(
        service.stub_for(ws).GetPhoto(photos_pb2.GetPhotoRequest(workspace_id=ws, photo_id="nope")),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "UUID" in details


async def test_list_photos_pages_in_upload_order(service: UploadService) -> None:
    ws = workspace()
    uploaded = [
        (await upload(service.stub_for(ws), ws, "a", images.jpeg(16, 16))).id for _ in range(5)
    ]
    other_item = await upload(service.stub_for(ws), ws, "b", images.jpeg(16, 16))
    seen, token, pages = [], "", 0
    while True:
        response = await service.stub_for(ws).ListPhotos(
            photos_pb2.ListPhotosRequest(
                workspace_id=ws, item_id="a", page_size=2, page_token=token
            )
        )
        seen += [p.id for p in response.photos]
        pages += 1
        token = response.next_page_token
        if not token:
            break
    assert seen == uploaded
    assert pages == 3
    everything = await service.stub_for(ws).ListPhotos(
        photos_pb2.ListPhotosRequest(workspace_id=ws)
    )
    assert [p.id for p in everything.photos] == [*uploaded, other_item.id]
    await expect_status(
        service.stub_for(ws).ListPhotos(
            photos_pb2.ListPhotosRequest(workspace_id=ws, page_token="junk")
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    await expect_status(
        service.stub_for(ws).ListPhotos(
            photos_pb2.ListPhotosRequest(workspace_id=ws, page_size=-1)
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )


async def test_delete_photo_removes_row_objects_and_records_event(
    service: UploadService, pool: asyncpg.Pool, store: ObjectStore
) -> None:
    ws = workspace()
    photo = await upload(service.stub_for(ws), ws, "i", images.jpeg(32, 32))
    request = photos_pb2.DeletePhotoRequest(workspace_id=ws, photo_id=photo.id)
    await service.stub_for(ws).DeletePhoto(request)
    photo_id = uuid.UUID(photo.id)
    assert await photo_count(pool, ws) == 0
    with pytest.raises(ObjectNotFound):
        await store.stat(original_key(ws, photo_id))
    types = await pool.fetch("SELECT type FROM events WHERE photo_id = $1 ORDER BY id", photo_id)
    assert [t["type"] for t in types] == ["photo.uploaded", "photo.deleted"]
    await expect_status(service.stub_for(ws).DeletePhoto(request), grpc.StatusCode.NOT_FOUND)


async def test_retry_requeues_only_failed_photos(
    service: UploadService, pool: asyncpg.Pool
) -> None:
    ws = workspace()
    photo = await upload(service.stub_for(ws), ws, "i", images.jpeg(32, 32))
    request = photos_pb2.RetryThumbnailsRequest(workspace_id=ws, photo_id=photo.id)
    details = await expect_status(
        service.stub_for(ws).RetryThumbnails(request), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert "pending" in details
    await set_thumbnail_state(pool, uuid.UUID(photo.id), "failed", 5, "boom")
    retried = await service.stub_for(ws).RetryThumbnails(request)
    assert retried.thumbnail_status == photos_pb2.THUMBNAIL_STATUS_PENDING
    assert (retried.thumbnail_attempts, retried.thumbnail_error) == (0, "")
    await expect_status(
        service.stub_for(ws).RetryThumbnails(
            photos_pb2.RetryThumbnailsRequest(workspace_id=ws, photo_id=str(uuid.uuid4()))
        ),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_health_and_reflection(service: UploadService) -> None:
    health = health_pb2_grpc.HealthStub(service.channel)
    for name in ("", "thumbwire.v1.PhotoService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(service.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for response in reflection.ServerReflectionInfo(iter([request])):
        names = {s.name for s in response.list_services_response.service}
        break
    assert {"thumbwire.v1.PhotoService", "grpc.health.v1.Health"} <= names


async def test_upload_while_storage_is_unreachable_is_unavailable(
    settings: Settings, pool: asyncpg.Pool
) -> None:
    cut_off = dataclasses.replace(
        settings,
        namespace=f"{settings.namespace}-nos3",
        upload_addr=free_address(),
        s3_endpoint=f"http://{free_address()}",  # nothing listens there
    )
    ws = workspace()
    async with running_upload(cut_off) as svc:
        await expect_status(
            upload(svc.stub_for(ws), ws, "i", images.jpeg(32, 32)), grpc.StatusCode.UNAVAILABLE
        )
    assert await photo_count(pool, ws) == 0


async def test_a_database_refusing_connections_is_unavailable_then_recovers(
    settings: Settings, pool: asyncpg.Pool, store: ObjectStore
) -> None:
    """A real outage: the service's database stops accepting connections and its open ones
    are cut, as during a PostgreSQL restart. Calls are UNAVAILABLE, then work again."""
    name = f"thumbwire_outage_{uuid.uuid4().hex[:8]}"
    own = dataclasses.replace(
        settings,
        database_url=settings.database_url.rsplit("/", 1)[0] + f"/{name}",
        namespace=f"{settings.namespace}-outage",
        upload_addr=free_address(),
    )
    ws = workspace()
    try:
        async with running_upload(own) as svc:
            photo = await upload(svc.stub_for(ws), ws, "i", images.jpeg(32, 32))
            request = photos_pb2.GetPhotoRequest(workspace_id=ws, photo_id=photo.id)
            await pool.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await pool.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            await expect_status(svc.stub_for(ws).GetPhoto(request), grpc.StatusCode.UNAVAILABLE)
            await expect_status(
                upload(svc.stub_for(ws), ws, "i", images.jpeg(32, 32)), grpc.StatusCode.UNAVAILABLE
            )
            await pool.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            assert (await svc.stub_for(ws).GetPhoto(request)).id == photo.id
    finally:
        await pool.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await pool.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
