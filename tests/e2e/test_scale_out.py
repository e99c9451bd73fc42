"""Past one process: two thumbnailers and two notifiers on one broker. The thumbnailers share
the jobs (one queue, competing consumers), and each notifier binds its own queue, so each
serves every event of a workspace to its own subscribers, once, in the same order."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families
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

WORKSPACE = "scale-out"
PHOTOS = 8
EVENTS_PER_PHOTO = 3  # uploaded, processing, ready


def on_own_addresses(settings: Settings) -> Settings:
    return dataclasses.replace(settings, notifier_addr=free_address(), gateway_addr=free_address())


@dataclasses.dataclass
class ScaledOut:
    notifiers: list[Settings]  # the settings each notifier serves on
    thumbnailers: list[Settings]  # and each thumbnailer's metrics address


@pytest.fixture
async def scaled_out(
    settings: Settings, pool: asyncpg.Pool, store: ObjectStore, tmp_path: Path
) -> AsyncIterator[ScaledOut]:
    """The stack (upload, thumbnailer, notifier), and a second notifier and a second
    thumbnailer beside it, one image at a time each."""
    own = dataclasses.replace(
        on_own_addresses(settings),
        namespace=f"{settings.namespace}-scaleout",
        upload_addr=free_address(),
        thumbnailer_metrics_addr=free_address(),
        thumbnailer_concurrency=1,
        public_url=None,
    )
    stack = Stack(own, tmp_path)
    await stack.start()
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    twin = dataclasses.replace(on_own_addresses(own), thumbnailer_metrics_addr=free_address())
    seconds = {name: ServiceProcess(name, twin, second_dir) for name in ("notifier", "thumbnailer")}
    for process in seconds.values():
        process.start()
    try:
        await wait_ready(twin, seconds)
        yield ScaledOut([own, twin], [own, twin])
    finally:
        codes = [*stack.stop().values(), *(p.terminate(30) for p in seconds.values())]
        assert set(codes) == {0}, stack.logs()


async def test_thumbnailers_share_the_work_and_each_notifier_serves_every_event_once(
    scaled_out: ScaledOut, http: aiohttp.ClientSession
) -> None:
    notifiers = scaled_out.notifiers
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
    completed = [await _completed_jobs(http, s) for s in scaled_out.thumbnailers]
    assert sum(completed) == PHOTOS and min(completed) > 0, completed  # shared, none twice


async def _completed_jobs(http: aiohttp.ClientSession, settings: Settings) -> int:
    """The jobs this thumbnailer completed, over every attempt label, from its /metrics."""
    async with http.get(f"http://{settings.thumbnailer_metrics_addr}/metrics") as response:
        page = await response.text()
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(page)
            for sample in family.samples
            if sample.name == "thumbwire_thumbnailer_jobs_total"
            and sample.labels.get("outcome") == "completed"
        )
    )


def _events_url(settings: Settings) -> str:
    return f"http://{settings.gateway_addr}/v1/workspaces/{WORKSPACE}/events"
