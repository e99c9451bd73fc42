"""One photo's trace id, from its upload through the broker to the thumbnailer and the
notifier, in the JSON logs of the three service processes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import aiohttp
import asyncpg
from thumbwire.v1 import photos_pb2_grpc

from services.core.config import Settings
from services.core.storage import ObjectStore
from tests.support import images
from tests.support.auth import auth_headers, bearer_channel, token_for
from tests.support.ports import free_address
from tests.support.stack import Stack
from tests.support.streams import SseSubscription
from tests.support.uploads import upload

WORKSPACE = "traced"


def json_lines(log: str) -> list[dict[str, object]]:
    """The log's JSON lines (a process may also print a few lines that are not)."""
    lines = []
    for line in log.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def traces_of(log: str, photo_id: str) -> set[object]:
    """The trace ids of the lines about `photo_id`; each such line must have one."""
    about = [line for line in json_lines(log) if line.get("photo_id") == photo_id]
    assert about, f"no log line about photo {photo_id}:\n{log[-2000:]}"
    return {line.get("trace_id") for line in about}


async def test_a_photos_trace_id_follows_it_through_every_service(
    settings: Settings,
    pool: asyncpg.Pool,
    store: ObjectStore,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    own = dataclasses.replace(
        settings,
        namespace=f"{settings.namespace}-tracing",
        upload_addr=free_address(),
        upload_metrics_addr=free_address(),
        notifier_addr=free_address(),
        gateway_addr=free_address(),
        thumbnailer_metrics_addr=free_address(),
        log_format="json",
    )
    stack = Stack(own, tmp_path)
    await stack.start()
    try:
        token = token_for(own, WORKSPACE)
        url = f"http://{own.gateway_addr}/v1/workspaces/{WORKSPACE}/events"
        events = await SseSubscription.open(http, url, auth_headers(token))
        async with bearer_channel(own.upload_addr, token) as channel:
            stub = photos_pb2_grpc.PhotoServiceStub(channel)
            photo = await upload(stub, WORKSPACE, "item-1", images.jpeg(320, 240))
        frames = await events.take_events(3)
        await events.close()
        assert frames[-1].fields["event"] == "photo.thumbnail_ready"
    finally:
        codes = stack.stop()
    assert set(codes.values()) == {0}, stack.logs()

    logs = {name: process.output() for name, process in stack.processes.items()}
    traces = {name: traces_of(log, photo.id) for name, log in logs.items()}
    assert traces["upload"] == traces["thumbnailer"] == traces["notifier"], traces
    (trace,) = traces["upload"]
    assert isinstance(trace, str) and trace
