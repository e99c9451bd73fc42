"""`thumbwire watch`: prints a workspace's events as they happen.

A stream can end while the command still wants it: the notifier ends streams on a broker
reconnect, and a stream lasts no longer than its token. Then the command subscribes again
after the last event it printed, with a new token if it signs its own, so that it prints every
event once. A token it was given (--token, $THUMBWIRE_TOKEN) is not renewed: when that one
expires, the command ends with the notifier's UNAUTHENTICATED."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator

import grpc
from thumbwire.v1 import notifier_pb2, notifier_pb2_grpc, photos_pb2

from services.cli.credentials import add_token_argument, command_token, given_token
from services.core.auth import STREAM_TOKEN_EXPIRED
from services.core.config import Settings
from services.core.grpc_bearer import bearer_channel

RESUME_PAUSE_S = 0.5


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
    after = args.after
    signs_its_own = not given_token(args)
    while True:
        token = command_token(settings, args, [args.workspace])
        try:
            async for event in events(settings, token, args.workspace, after):
                print(describe(event), flush=True)
                after = event.id
            reason = "the notifier ended the stream"
        except grpc.aio.AioRpcError as exc:
            if not (signs_its_own and _token_expired_midstream(exc)):
                raise
            reason = "the stream's token expired"
        print(f"thumbwire: {reason}; subscribing again after event {after}", file=sys.stderr)
        await asyncio.sleep(RESUME_PAUSE_S)


def _token_expired_midstream(exc: grpc.aio.AioRpcError) -> bool:
    """The notifier ended an open stream because its token expired (not a token refused at
    the start, which a new one of the same making would not cure)."""
    return exc.code() == grpc.StatusCode.UNAUTHENTICATED and exc.details() == STREAM_TOKEN_EXPIRED
