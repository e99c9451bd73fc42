"""`thumbwire upload`: streams files to PhotoService; with --wait, waits for their thumbnails."""

from __future__ import annotations

import argparse
import asyncio
import mimetypes
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar, cast

import grpc
from thumbwire.v1 import notifier_pb2, notifier_pb2_grpc, photos_pb2, photos_pb2_grpc

from services.cli.credentials import add_token_argument, command_token
from services.cli.progress import ProgressBar
from services.core import outages
from services.core.config import Settings
from services.core.grpc_bearer import bearer_channel

# Each message costs both sides its own parsing, copying and wake-ups: 3 MB photos sent in
# 1 MiB chunks took the upload service 11.3 ms of CPU on average against 12.7 in 256 KiB ones,
# and the machine 31.2 ms against 32.7 (bench.upload_profile cpu, four batches each, alternated).
# Well under gRPC's 4 MiB default message limit.
CHUNK_BYTES = 1024 * 1024
# How long `thumbwire upload` tries again while the upload service answers UNAVAILABLE.
RETRY_FOR_S = 60.0
TERMINAL_EVENTS = {"photo.thumbnail_ready", "photo.thumbnail_failed"}
COMPLETE = photos_pb2.THUMBNAIL_STATUS_COMPLETE
FAILED = photos_pb2.THUMBNAIL_STATUS_FAILED

_T = TypeVar("_T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--item", required=True)
    parser.add_argument("--caption", default="")
    parser.add_argument("--wait", action="store_true", help="wait for the thumbnails")
    add_token_argument(parser)


async def file_requests(
    path: Path, metadata: photos_pb2.UploadMetadata, progress: ProgressBar | None = None
) -> AsyncIterator[photos_pb2.UploadPhotoRequest]:
    yield photos_pb2.UploadPhotoRequest(metadata=metadata)
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            yield photos_pb2.UploadPhotoRequest(chunk=chunk)
            if progress is not None:
                progress.advance(len(chunk))


async def upload_file(
    stub: photos_pb2_grpc.PhotoServiceStub, path: Path, args: argparse.Namespace
) -> photos_pb2.Photo:
    """Streams the file, again while the service answers UNAVAILABLE (when_available). Every
    try carries the same idempotency key, so that a try whose answer was lost, after the
    photo was recorded, does not make a second photo: the server answers with the first."""
    metadata = photos_pb2.UploadMetadata(
        workspace_id=args.workspace,
        item_id=args.item,
        filename=path.name,
        content_type=mimetypes.guess_type(path.name)[0] or "",
        caption=args.caption,
        idempotency_key=uuid.uuid4().hex,
    )
    size = await asyncio.to_thread(os.path.getsize, path)

    async def one_try() -> photos_pb2.Photo:
        progress = ProgressBar(path.name, size)
        try:
            return await stub.UploadPhoto(file_requests(path, metadata, progress))
        finally:
            progress.finish()

    return await when_available(one_try, str(path))


async def when_available(call: Callable[[], Awaitable[_T]], what: str) -> _T:
    """`call()`, tried again for up to RETRY_FOR_S while it fails with UNAVAILABLE: a service
    or what it depends on is down for now (a restart, a database failover), and the API
    says to try again. Each pause is said on stderr."""

    def on_pause(exc: Exception, pause_s: float) -> None:
        details = cast(grpc.aio.AioRpcError, exc).details()  # only those pass _unavailable
        print(
            f"thumbwire: {what}: unavailable ({details}); trying again in {pause_s:.1f} s",
            file=sys.stderr,
            flush=True,
        )

    return await outages.ride_out(
        call, _unavailable, RETRY_FOR_S, on_pause, first_pause_s=0.5, longest_pause_s=10.0
    )


def _unavailable(exc: Exception) -> bool:
    return isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.UNAVAILABLE


def report(photo: photos_pb2.Photo) -> None:
    if photo.thumbnail_status == photos_pb2.THUMBNAIL_STATUS_FAILED:
        print(f"{photo.id}: failed: {photo.thumbnail_error}")
        return
    for thumbnail in sorted(photo.thumbnails, key=lambda t: t.size):
        size = photos_pb2.ThumbnailSize.Name(thumbnail.size).removeprefix("THUMBNAIL_SIZE_")
        print(f"{photo.id}: {size.lower()} {thumbnail.width}x{thumbnail.height} {thumbnail.url}")


async def check_access(stub: photos_pb2_grpc.PhotoServiceStub, workspace_id: str) -> None:
    """Raises the AioRpcError of a token the server refuses (UNAUTHENTICATED, PERMISSION_DENIED)
    before any upload starts. A refused upload stream may otherwise be reported as INTERNAL:
    grpc.aio's client overwrites the server's status when it writes after the server ended the
    call (grpc/grpc#36066), which a large file makes likely."""
    await stub.ListPhotos(photos_pb2.ListPhotosRequest(workspace_id=workspace_id, page_size=1))


async def run(settings: Settings, args: argparse.Namespace) -> int:
    token = command_token(settings, args, [args.workspace])
    async with bearer_channel(settings.upload_addr, token) as channel:
        stub = photos_pb2_grpc.PhotoServiceStub(channel)
        await when_available(lambda: check_access(stub, args.workspace), "the upload service")
        photos = []
        for path in args.files:
            photo = await upload_file(stub, path, args)
            print(f"{path}: uploaded as {photo.id} ({photo.width}x{photo.height})", flush=True)
            photos.append(photo)
        if not args.wait:
            return 0
        ids = {p.id for p in photos}
        finished = await wait_finished(settings, token, stub, args.workspace, ids)
    for photo in photos:
        report(finished[photo.id])
    return 1 if any(p.thumbnail_status == FAILED for p in finished.values()) else 0


async def wait_finished(
    settings: Settings,
    token: str,
    stub: photos_pb2_grpc.PhotoServiceStub,
    workspace_id: str,
    ids: set[str],
) -> dict[str, photos_pb2.Photo]:
    """Each photo once its thumbnails are ready or have failed."""
    finished: dict[str, photos_pb2.Photo] = {}
    async with bearer_channel(settings.notifier_addr, token) as channel:
        call = notifier_pb2_grpc.NotifierServiceStub(channel).Subscribe(
            notifier_pb2.SubscribeRequest(workspace_id=workspace_id)
        )
        # The notifier sends its headers once the subscription is registered: anything that
        # finishes after the look-ups below arrives on the stream.
        await call.initial_metadata()
        for photo_id in ids:
            photo = await stub.GetPhoto(
                photos_pb2.GetPhotoRequest(workspace_id=workspace_id, photo_id=photo_id)
            )
            if photo.thumbnail_status in (COMPLETE, FAILED):
                finished[photo_id] = photo
        async for event in _until(call, lambda: len(finished) == len(ids)):
            if event.photo_id in ids and event.type in TERMINAL_EVENTS:
                finished[event.photo_id] = event.photo
        call.cancel()
    return finished


async def _until(
    call: AsyncIterator[notifier_pb2.PhotoEvent], done: Callable[[], bool]
) -> AsyncIterator[notifier_pb2.PhotoEvent]:
    """The stream's events, until `done()` holds (checked before each one is awaited)."""
    iterator = aiter(call)
    while not done():
        yield await anext(iterator)
