"""`thumbwire upload`: streams files to PhotoService; with --wait, waits for their thumbnails."""

from __future__ import annotations

import argparse
import asyncio
import mimetypes
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from thumbwire.v1 import notifier_pb2, notifier_pb2_grpc, photos_pb2, photos_pb2_grpc

from services.cli.credentials import add_token_argument, command_token
from services.cli.progress import ProgressBar
from services.core.config import Settings
from services.core.grpc_bearer import bearer_channel

CHUNK_BYTES = 256 * 1024
TERMINAL_EVENTS = {"photo.thumbnail_ready", "photo.thumbnail_failed"}
COMPLETE = photos_pb2.THUMBNAIL_STATUS_COMPLETE
FAILED = photos_pb2.THUMBNAIL_STATUS_FAILED


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
    metadata = photos_pb2.UploadMetadata(
        workspace_id=args.workspace,
        item_id=args.item,
        filename=path.name,
        content_type=mimetypes.guess_type(path.name)[0] or "",
        caption=args.caption,
    )
    progress = ProgressBar(path.name, await asyncio.to_thread(os.path.getsize, path))
    photo = await stub.UploadPhoto(file_requests(path, metadata, progress))
    progress.finish()
    return photo


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
        await check_access(stub, args.workspace)
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
