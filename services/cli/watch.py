"""`thumbwire watch`: prints a workspace's events as they happen."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

from thumbwire.v1 import notifier_pb2, notifier_pb2_grpc, photos_pb2

from services.cli.credentials import add_token_argument, command_token
from services.core.config import Settings
from services.core.grpc_bearer import bearer_channel


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--after", type=int, default=0, help="replay events after this id")
    add_token_argument(parser)


async def events(
    settings: Settings, token: str, workspace_id: str, after_event_id: int = 0
) -> AsyncIterator[notifier_pb2.PhotoEvent]:
    async with bearer_channel(settings.notifier_addr, token) as channel:
        stub = notifier_pb2_grpc.NotifierServiceStub(channel)
        request = notifier_pb2.SubscribeRequest(
            workspace_id=workspace_id, after_event_id=after_event_id
        )
        async for event in stub.Subscribe(request):
            yield event


def describe(event: notifier_pb2.PhotoEvent) -> str:
    status = photos_pb2.ThumbnailStatus.Name(event.photo.thumbnail_status)
    line = f"{event.id}\t{event.type}\t{event.photo_id}\t{status}"
    return f"{line}\t{event.error}" if event.error else line


async def run(settings: Settings, args: argparse.Namespace) -> int:
    token = command_token(settings, args, [args.workspace])
    async for event in events(settings, token, args.workspace, args.after):
        print(describe(event), flush=True)
    return 0
