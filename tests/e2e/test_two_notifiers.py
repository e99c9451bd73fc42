"""Two notifier processes on one stack: each binds its own queue, so each serves every event
of every workspace to its own subscribers, once, in the same order."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from thumbwire.v1 import photos_pb2_grpc

from services.core.config import Settings
from services.core.storage import ObjectStore
from tests.support import images
from tests.support.auth import auth_headers, bearer_channel, token_for
from tests.support.ports import free_address
from tests.support.processes import ServiceProcess
from tests.support.stack import Stack, wait_ready
from tests.support.streams import GrpcSubscription, SseSubscription
from tests.support.uploads import upload

WORKSPACE = "two-notifiers"
PHOTOS = 3
EVENTS_PER_PHOTO = 3  # uploaded, processing, ready


def on_own_addresses(settings: Settings) -> Settings:
    return dataclasses.replace(settings, notifier_addr=free_address(), gateway_addr=free_address())


@pytest.fixture
async def notifiers(
    settings: Settings, pool: asyncpg.Pool, store: ObjectStore, tmp_path: Path
) -> AsyncIterator[list[Settings]]:
    """The stack (upload, thumbnailer, notifier) and a second notifier process beside it;
    the settings each notifier serves on."""
    own = dataclasses.replace(
        on_own_addresses(settings),
        namespace=f"{settings.namespace}-twonotifiers",
        upload_addr=free_address(),
        thumbnailer_metrics_addr=free_address(),
        public_url=None,
    )
    stack = Stack(own, tmp_path)
    await stack.start()
    second_settings = on_own_addresses(own)
    second = ServiceProcess("notifier", second_settings, tmp_path / "second")
    (tmp_path / "second").mkdir()
    second.start()
    try:
        await wait_ready(second_settings, {"notifier": second})
        yield [own, second_settings]
    finally:
        codes = [*stack.stop().values(), second.terminate(30)]
        assert set(codes) == {0}, stack.logs()


async def test_each_notifier_serves_every_event_once_in_order(
    notifiers: list[Settings], http: aiohttp.ClientSession
) -> None:
    token = token_for(notifiers[0], WORKSPACE)
    grpc_streams = [GrpcSubscription(s, WORKSPACE, token=token) for s in notifiers]
    sse_streams = [
        await SseSubscription.open(http, _events_url(s), auth_headers(token)) for s in notifiers
    ]
    try:
        for stream in grpc_streams:
            await stream.call.initial_metadata()  # subscribed before the uploads
        async with bearer_channel(notifiers[0].upload_addr, token) as channel:
            stub = photos_pb2_grpc.PhotoServiceStub(channel)
            for i in range(PHOTOS):
                await upload(stub, WORKSPACE, "item-1", images.jpeg(300 + i, 200))
        expected = PHOTOS * EVENTS_PER_PHOTO
        by_grpc = [[(e.id, e.type) for e in await s.take(expected)] for s in grpc_streams]
        by_sse = [
            [(int(f.fields["id"]), f.fields["event"]) for f in await s.take_events(expected)]
            for s in sse_streams
        ]
    finally:
        for stream in grpc_streams:
            await stream.__aexit__(None, None, None)
        await asyncio.gather(*(s.close() for s in sse_streams))

    first = by_grpc[0]
    assert all(events == first for events in [*by_grpc, *by_sse])
    assert len({event_id for event_id, _ in first}) == expected  # no duplicates
    assert [event_id for event_id, _ in first] == sorted(event_id for event_id, _ in first)
    assert [t for _, t in first].count("photo.thumbnail_ready") == PHOTOS


def _events_url(settings: Settings) -> str:
    return f"http://{settings.gateway_addr}/v1/workspaces/{WORKSPACE}/events"
