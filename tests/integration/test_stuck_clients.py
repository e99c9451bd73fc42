"""A client that stops reading never delays the others (issue 6, item 3), over real sockets:
a stuck SSE client (a raw socket with a tiny receive buffer that never reads) and a stuck gRPC
subscriber (a call never read, on a channel with small HTTP/2 windows) each sit beside healthy
subscribers of the same workspace. Large events fill the stuck one's buffers; every event still
reaches the healthy ones within a bounded wait, the stuck one is disconnected, and resuming
from its last id replays what it missed."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import struct
import uuid
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import grpc
import pytest
from thumbwire.v1 import notifier_pb2, notifier_pb2_grpc

from services.core.config import Settings
from services.core.grpc_bearer import bearer_interceptors
from services.core.outbox import OutboxRelay
from services.core.topology import Topology, declare_topology
from tests.support.auth import token_for
from tests.support.events_seed import add_photo, event_ids_after
from tests.support.services import RunningNotifier, start_notifier
from tests.support.streams import GrpcSubscription, SseSubscription

# Each event carries this much caption, so a few dozen fill any socket's buffers.
CAPTION_BYTES = 48 * 1024
MAX_EVENTS = 150
DROP_GRACE_CHECKS = 50  # x 0.1 s, ten times the write timeout
TCP_CLOSE = 7  # tcpi_state of a connection that has been reset (linux/tcp_states.h)
# Small HTTP/2 windows and no BDP probing: the stuck call's window stays small.
SMALL_WINDOWS = [("grpc.http2.lookahead_bytes", 1024), ("grpc.http2.bdp_probe", 0)]


@pytest.fixture(scope="module")
async def strict(
    settings: Settings, pool: asyncpg.Pool, amqp: object
) -> AsyncIterator[tuple[RunningNotifier, OutboxRelay]]:
    """A notifier that keeps few events per subscriber and waits little for a write, on a
    namespace of its own, with a relay that publishes to it."""
    own = dataclasses.replace(
        settings,
        namespace=f"{settings.namespace}-stuck",
        subscriber_buffer=4,
        stream_write_timeout_s=0.5,
    )
    channel = await amqp.channel()  # type: ignore[attr-defined]
    exchanges = await declare_topology(channel, Topology.from_settings(own))
    running = await start_notifier(own)
    yield running, OutboxRelay(pool, exchanges)
    await running.close()
    await channel.close()


def events_path(notifier: RunningNotifier, workspace_id: str, last_id: int) -> str:
    token = token_for(notifier.settings, workspace_id)
    return f"/v1/workspaces/{workspace_id}/events?access_token={token}&last_event_id={last_id}"


async def open_stuck_sse(notifier: RunningNotifier, path: str) -> socket.socket:
    """A connection that sends the request and then never reads a byte."""
    host, port = notifier.settings.gateway_addr.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    await loop.sock_sendall(sock, f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    return sock


def tcp_state(sock: socket.socket) -> int:
    return struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[:1])[0]


def received_ids(sock: socket.socket) -> list[int]:
    """The ids of the complete event frames the kernel kept for the socket, read now."""
    data = b""
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
    frames = data.partition(b"\r\n\r\n")[2].split(b"\n\n")[:-1]  # the last may be cut short
    return [int(line[4:]) for f in frames for line in f.split(b"\n") if line.startswith(b"id: ")]


async def publish_big(pool: asyncpg.Pool, relay: OutboxRelay, workspace_id: str) -> int:
    event = await add_photo(pool, workspace_id, caption="x" * CAPTION_BYTES)
    await relay.drain()
    return event.id


async def feed_until_dropped(
    pool: asyncpg.Pool,
    relay: OutboxRelay,
    workspace_id: str,
    healthy: list[GrpcSubscription | SseSubscription],
    dropped: object,
) -> None:
    """Publishes large events one by one; each must reach every healthy subscriber within
    the usual wait. Ends once `dropped()` holds: the stuck client has been cut off."""
    for _ in range(MAX_EVENTS):
        event_id = await publish_big(pool, relay, workspace_id)
        for subscriber in healthy:
            assert await next_id(subscriber) == event_id
        if dropped():  # type: ignore[operator]
            return
    # The last events may have filled the stuck client's buffers only just now: its write
    # timeout (0.5 s) has yet to pass. Give it a bounded while before calling it a failure.
    for _ in range(DROP_GRACE_CHECKS):
        await asyncio.sleep(0.1)
        if dropped():  # type: ignore[operator]
            return
    raise AssertionError(f"the stuck client was still connected after {MAX_EVENTS} events")


async def next_id(subscriber: GrpcSubscription | SseSubscription) -> int:
    if isinstance(subscriber, GrpcSubscription):
        message = await subscriber.next()
        assert message is not None, "a healthy gRPC stream ended"
        return message.id
    frame = await subscriber.next_event()
    assert frame is not None, "a healthy SSE stream ended"
    return int(frame.fields["id"])


async def test_a_stuck_sse_client_is_dropped_and_the_others_keep_up(
    strict: tuple[RunningNotifier, OutboxRelay], pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    notifier, relay = strict
    workspace_id = f"ws-{uuid.uuid4().hex[:10]}"
    start = await publish_big(pool, relay, workspace_id)
    stuck = await open_stuck_sse(notifier, events_path(notifier, workspace_id, start))
    url = f"{notifier.http}{events_path(notifier, workspace_id, start)}"
    healthy_sse = await SseSubscription.open(http, url)
    try:
        async with GrpcSubscription(notifier.settings, workspace_id, start) as healthy_grpc:
            await feed_until_dropped(
                pool,
                relay,
                workspace_id,
                [healthy_sse, healthy_grpc],
                lambda: tcp_state(stuck) == TCP_CLOSE,
            )
    finally:
        await healthy_sse.close()
    got = received_ids(stuck)
    stuck.close()
    last_id = got[-1] if got else start
    missed = await event_ids_after(pool, workspace_id, last_id)
    assert missed, "the stuck client had everything: it was never behind"

    resumed = await SseSubscription.open(
        http, f"{notifier.http}{events_path(notifier, workspace_id, last_id)}"
    )
    try:
        assert [int(f.fields["id"]) for f in await resumed.take_events(len(missed))] == missed
    finally:
        await resumed.close()


async def test_a_stuck_grpc_subscriber_is_dropped_and_the_others_keep_up(
    strict: tuple[RunningNotifier, OutboxRelay],
    pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="services.notifier")
    notifier, relay = strict
    workspace_id = f"ws-{uuid.uuid4().hex[:10]}"
    before = await publish_big(pool, relay, workspace_id)
    token = token_for(notifier.settings, workspace_id)
    async with (
        grpc.aio.insecure_channel(
            notifier.settings.notifier_addr,
            options=SMALL_WINDOWS,
            interceptors=bearer_interceptors(token),
        ) as channel,
        GrpcSubscription(notifier.settings, workspace_id, before) as healthy,
    ):
        stub = notifier_pb2_grpc.NotifierServiceStub(channel)
        request = notifier_pb2.SubscribeRequest(workspace_id=workspace_id, after_event_id=before)
        stuck = stub.Subscribe(request)
        await asyncio.wait_for(stuck.wait_for_connection(), 10)  # subscribed; now never reads

        def dropped() -> bool:
            return any(
                "dropped" in r.getMessage() and workspace_id in r.getMessage()
                for r in caplog.records
            )

        await feed_until_dropped(pool, relay, workspace_id, [healthy], dropped)
        published = await event_ids_after(pool, workspace_id, before)
        # Reading again, it gets what was already on its way, then the word to resume.
        got: list[int] = []
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            async with asyncio.timeout(10):
                async for message in stuck:  # type: ignore[attr-defined]
                    got.append(message.id)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "resume" in (ended.value.details() or "")
        assert got == published[: len(got)] and len(got) < len(published)

    last_id = got[-1] if got else before
    missed = await event_ids_after(pool, workspace_id, last_id)
    async with GrpcSubscription(notifier.settings, workspace_id, last_id) as resumed:
        assert [m.id for m in await resumed.take(len(missed))] == missed
