"""`thumbwire photos list|get|delete|retry`: a workspace's photos, through PhotoService."""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator

from google.protobuf.json_format import MessageToDict
from thumbwire.v1 import photos_pb2, photos_pb2_grpc

from services.cli.credentials import add_token_argument, command_token
from services.core.config import Settings
from services.core.grpc_bearer import bearer_channel

ONE_PHOTO_ACTIONS = ("get", "delete", "retry")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the workspace's photos, in upload order")
    _common(listing)
    listing.add_argument("--item", default="", help="only this item's photos")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (0: all)")
    for action in ONE_PHOTO_ACTIONS:
        one = actions.add_parser(action, help=f"{action} one photo")
        _common(one)
        one.add_argument("photo_id")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    add_token_argument(parser)


async def run(settings: Settings, args: argparse.Namespace) -> int:
    token = command_token(settings, args, [args.workspace])
    async with bearer_channel(settings.upload_addr, token) as channel:
        stub = photos_pb2_grpc.PhotoServiceStub(channel)
        if args.action == "list":
            async for photo in _listed(stub, args.workspace, args.item, args.limit):
                _show(photo, args.json)
            return 0
        return await _one_photo(stub, args)


async def _one_photo(stub: photos_pb2_grpc.PhotoServiceStub, args: argparse.Namespace) -> int:
    ids = {"workspace_id": args.workspace, "photo_id": args.photo_id}
    if args.action == "delete":
        await stub.DeletePhoto(photos_pb2.DeletePhotoRequest(**ids))
        print(f"{args.photo_id}: deleted")
        return 0
    if args.action == "retry":
        photo = await stub.RetryThumbnails(photos_pb2.RetryThumbnailsRequest(**ids))
    else:
        photo = await stub.GetPhoto(photos_pb2.GetPhotoRequest(**ids))
    _show(photo, args.json)
    return 0


async def _listed(
    stub: photos_pb2_grpc.PhotoServiceStub, workspace_id: str, item_id: str, limit: int
) -> AsyncIterator[photos_pb2.Photo]:
    shown, token = 0, ""
    while True:
        page = await stub.ListPhotos(
            photos_pb2.ListPhotosRequest(
                workspace_id=workspace_id, item_id=item_id, page_size=100, page_token=token
            )
        )
        for photo in page.photos:
            if limit and shown >= limit:
                return
            yield photo
            shown += 1
        token = page.next_page_token
        if not token:
            return


def _show(photo: photos_pb2.Photo, as_json: bool) -> None:
    if as_json:
        print(json.dumps(MessageToDict(photo, preserving_proto_field_name=True)))
        return
    status = photos_pb2.ThumbnailStatus.Name(photo.thumbnail_status).removeprefix(
        "THUMBNAIL_STATUS_"
    )
    line = (
        f"{photo.id}\t{photo.item_id}\t{status.lower()}\t{photo.thumbnail_attempts}"
        f"\t{photo.width}x{photo.height}\t{photo.filename}"
    )
    print(f"{line}\t{photo.thumbnail_error}" if photo.thumbnail_error else line)
