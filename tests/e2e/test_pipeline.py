"""The whole pipeline: every service as a process, photos uploaded over gRPC, and their
thumbnails announced on both the gRPC stream and SSE, then fetched from their URLs."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from PIL import Image
from thumbwire.v1 import notifier_pb2, notifier_pb2_grpc, photos_pb2, photos_pb2_grpc

from services.core.config import Settings
from tests.support import images
from tests.support.auth import auth_headers, bearer_channel, token_for
from tests.support.processes import ServiceProcess, settings_env
from tests.support.stack import SERVICES, own_settings, wait_ready
from tests.support.uploads import upload

pytestmark = pytest.mark.e2e
EXPECTED_SIZES = {
    # (original displayed size) -> small, medium, large
    (1200, 900): [(150, 112), (400, 300), (800, 600)],
    (300, 200): [(150, 100), (300, 200), (300, 200)],
    (600, 800): [(112, 150), (300, 400), (600, 800)],
}


@pytest.fixture(scope="module")
def stack_settings(settings: Settings) -> Settings:
    return own_settings(settings, "e2e")


@pytest.fixture(scope="module")
async def stack(stack_settings: Settings, pool, store, tmp_path_factory) -> AsyncIterator[dict]:
    log_dir = tmp_path_factory.mktemp("e2e-logs")
    processes = {name: ServiceProcess(name, stack_settings, log_dir) for name in SERVICES}
    for process in processes.values():
        process.start()
    try:
        await wait_ready(stack_settings, processes)
        yield processes
    finally:
        codes = {name: p.terminate() for name, p in processes.items()}
        for name, process in processes.items():
            print(f"--- {name} (exit {codes[name]}) ---\n{process.output()[-3000:]}")
        assert codes == dict.fromkeys(SERVICES, 0), codes
        for name, process in processes.items():
            assert_no_credentials(process.output(), stack_settings, name)


# The three dot-separated base64url parts of a JWT whose header starts with {"
JWT_PATTERN = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


def assert_no_credentials(output: str, settings: Settings, name: str) -> None:
    assert settings.auth_secret and settings.auth_secret not in output, f"{name} logged the secret"
    assert not JWT_PATTERN.search(output), f"{name} logged a token"


async def grpc_events(
    settings: Settings, workspace_id: str, subscribed: asyncio.Event
) -> AsyncIterator[notifier_pb2.PhotoEvent]:
    token = token_for(settings, workspace_id)
    async with bearer_channel(settings.notifier_addr, token) as channel:
        call = notifier_pb2_grpc.NotifierServiceStub(channel).Subscribe(
            notifier_pb2.SubscribeRequest(workspace_id=workspace_id)
        )
        await call.initial_metadata()
        subscribed.set()
        async for event in call:
            yield event


async def sse_events(
    settings: Settings, workspace_id: str, subscribed: asyncio.Event
) -> AsyncIterator[dict]:
    url = f"http://{settings.gateway_addr}/v1/workspaces/{workspace_id}/events"
    headers = auth_headers(token_for(settings, workspace_id))
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        subscribed.set()
        frame: dict = {}
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if not line:
                if "data" in frame:
                    yield frame
                frame = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                frame[field] = value.removeprefix(" ")


async def collect_until_ready(stream: AsyncIterator, photo_ids: set[str], key) -> list:
    """Events until every photo in `photo_ids` has its ready event."""
    seen, ready = [], set()
    async for event in stream:
        seen.append(event)
        photo_id, kind = key(event)
        if kind == "photo.thumbnail_ready" and photo_id in photo_ids:
            ready.add(photo_id)
            if ready == photo_ids:
                return seen
    raise AssertionError("the stream ended before every photo was ready")


def sse_key(frame: dict) -> tuple[str, str]:
    return json.loads(frame["data"])["photo_id"], frame["event"]


def grpc_key(event: notifier_pb2.PhotoEvent) -> tuple[str, str]:
    return event.photo_id, event.type


async def test_photos_travel_from_upload_to_thumbnails(stack, stack_settings: Settings) -> None:
    ws = f"e2e-{uuid.uuid4().hex[:8]}"
    grpc_subscribed, sse_subscribed = asyncio.Event(), asyncio.Event()
    originals = {
        (1200, 900): images.jpeg(1200, 900),
        (300, 200): images.png(300, 200),
        (600, 800): images.jpeg(800, 600, orientation=6),
    }
    photo_ids: set[str] = set()
    sizes_by_photo: dict[str, tuple[int, int]] = {}

    async def run_uploads() -> list[photos_pb2.Photo]:
        await asyncio.wait_for(grpc_subscribed.wait(), 10)
        await asyncio.wait_for(sse_subscribed.wait(), 10)
        token = token_for(stack_settings, ws)
        async with bearer_channel(stack_settings.upload_addr, token) as channel:
            stub = photos_pb2_grpc.PhotoServiceStub(channel)
            photos = []
            for size, data in originals.items():
                photo = await upload(stub, ws, "item-1", data)
                photo_ids.add(photo.id)
                sizes_by_photo[photo.id] = size
                photos.append(photo)
        for photo, size in zip(photos, originals, strict=True):
            assert photo.thumbnail_status == photos_pb2.THUMBNAIL_STATUS_PENDING
            assert (photo.width, photo.height) == size
        return photos

    uploads = asyncio.create_task(run_uploads())
    grpc_stream = grpc_events(stack_settings, ws, grpc_subscribed)
    sse_stream = sse_events(stack_settings, ws, sse_subscribed)
    # photo_ids fills in once the uploads return, before any ready event can arrive.
    grpc_seen, sse_seen = await asyncio.wait_for(
        asyncio.gather(
            collect_until_ready(grpc_stream, photo_ids, grpc_key),
            collect_until_ready(sse_stream, photo_ids, sse_key),
        ),
        60,
    )
    await uploads

    assert [e.id for e in grpc_seen] == [int(f["id"]) for f in sse_seen]
    assert [e.type for e in grpc_seen] == [f["event"] for f in sse_seen]
    ids = [e.id for e in grpc_seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for photo_id in photo_ids:
        kinds = [e.type for e in grpc_seen if e.photo_id == photo_id]
        assert kinds == ["photo.uploaded", "photo.thumbnail_processing", "photo.thumbnail_ready"]

    ready = [e for e in grpc_seen if e.type == "photo.thumbnail_ready"]
    headers = auth_headers(token_for(stack_settings, ws))
    async with aiohttp.ClientSession(headers=headers) as session:
        for event in ready:
            expected = EXPECTED_SIZES[sizes_by_photo[event.photo_id]]
            await check_thumbnails(session, event.photo, expected)
    for frame in sse_seen:
        data = json.loads(frame["data"])
        assert {"photo_id", "item_id", "thumbnail_status"} <= data.keys()
        if frame["event"] == "photo.thumbnail_ready":
            assert data["thumbnail_status"] == "complete"
            assert {t["size"] for t in data["thumbnails"]} == {"small", "medium", "large"}
            assert all({"width", "height", "url"} <= t.keys() for t in data["thumbnails"])


async def check_thumbnails(
    session: aiohttp.ClientSession, photo: photos_pb2.Photo, expected: list[tuple[int, int]]
) -> None:
    assert photo.thumbnail_status == photos_pb2.THUMBNAIL_STATUS_COMPLETE
    by_size = sorted(photo.thumbnails, key=lambda t: t.size)
    assert [t.size for t in by_size] == [
        photos_pb2.THUMBNAIL_SIZE_SMALL,
        photos_pb2.THUMBNAIL_SIZE_MEDIUM,
        photos_pb2.THUMBNAIL_SIZE_LARGE,
    ]
    for thumbnail, (width, height) in zip(by_size, expected, strict=True):
        assert (thumbnail.width, thumbnail.height) == (width, height)
        async with session.get(thumbnail.url) as response:
            assert response.status == 200, thumbnail.url
            assert response.headers["Content-Type"] == "image/webp"
            body = await response.read()
        assert len(body) == thumbnail.size_bytes
        with Image.open(io.BytesIO(body)) as image:
            assert image.format == "WEBP"
            assert image.size == (width, height)


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "services.cli", *args]
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


async def test_cli_uploads_and_waits_for_thumbnails(
    stack, stack_settings: Settings, tmp_path: Path
) -> None:
    photo = tmp_path / "shelf.jpg"
    photo.write_bytes(images.jpeg(1000, 500))
    # `thumbwire token` signs with the secret; the upload then has only the token.
    minted = await asyncio.to_thread(
        run_cli,
        ["token", "--workspace", "cli-ws", "--ttl", "10m"],
        settings_env(stack_settings),
        tmp_path,
    )
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    env = settings_env(dataclasses.replace(stack_settings, auth_secret=None))
    env["THUMBWIRE_TOKEN"] = token
    upload_args = ["upload", str(photo), "--workspace", "cli-ws", "--item", "shelf", "--wait"]
    result = await asyncio.to_thread(run_cli, upload_args, env, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "uploaded as" in lines[0]
    assert "shelf.jpg [########################] 100%" in result.stderr  # the progress bar
    assert [line.split()[1:3] for line in lines[1:]] == [
        ["small", "150x75"],
        ["medium", "400x200"],
        ["large", "800x400"],
    ]
    assert all(line.split()[3].startswith("http://") for line in lines[1:])

    # The same token does not open another workspace, to watch or to upload; a large upload
    # too is refused as PERMISSION_DENIED (the CLI checks access before it streams the file).
    large = tmp_path / "large.jpg"
    large.write_bytes(images.jpeg(64, 64) + bytes(4_000_000))
    for other in (
        ["watch", "--workspace", "not-cli-ws"],
        ["upload", str(large), "--workspace", "not-cli-ws", "--item", "shelf"],
    ):
        denied = await asyncio.to_thread(run_cli, other, env, tmp_path)
        assert denied.returncode == 1
        assert "PERMISSION_DENIED" in denied.stderr
        assert token not in denied.stderr
