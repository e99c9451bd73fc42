"""The notifier against the real PostgreSQL, RabbitMQ and S3: events written as the services
write them (state + event in one transaction, outbox relay to the broker) reach gRPC and SSE
subscribers, resume is exact, thumbnails are served by URL, and stop ends every stream."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import asyncpg
import grpc
import pytest
from aio_pika import Message
from aio_pika.abc import AbstractRobustConnection
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.cli import credentials, watch
from services.cli.credentials import TOKEN_VARIABLE
from services.core import broker
from services.core.auth import LEEWAY_S, STREAM_TOKEN_EXPIRED, TokenAuthority
from services.core.config import Settings
from services.core.events import EventRecord, EventType
from services.core.outbox import OutboxRelay
from services.core.storage import ObjectStore
from services.core.topology import Topology
from services.notifier.acks import ACK_AFTER_S
from services.notifier.consumer import EventConsumer, new_instance_id
from services.notifier.hub import Hub
from services.notifier.stream import replay_then_live
from tests.support.auth import auth_headers, token_for
from tests.support.events_seed import add_photo, event_ids_after, mark_complete, put_thumbnails
from tests.support.outages import until
from tests.support.polling import eventually
from tests.support.services import RunningNotifier, start_notifier
from tests.support.streams import GrpcSubscription, SseSubscription
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture(scope="module")
async def notifier(
    settings: Settings, pool: asyncpg.Pool, exchanges: object
) -> AsyncIterator[RunningNotifier]:
    running = await start_notifier(settings)
    yield running
    await running.close()


@pytest.fixture(scope="module")
def relay(pool: asyncpg.Pool, exchanges: dict) -> OutboxRelay:
    return OutboxRelay(pool, exchanges)


def new_workspace() -> str:
    return f"ws-{uuid.uuid4().hex[:10]}"


def events_url(notifier: RunningNotifier, workspace_id: str, query: str = "") -> str:
    """The SSE URL, with a token for the workspace in `access_token`, as EventSource sends it."""
    token = token_for(notifier.settings, workspace_id)
    return f"{notifier.http}/v1/workspaces/{workspace_id}/events?access_token={token}{query}"


async def publish_new_photo(pool: asyncpg.Pool, relay: OutboxRelay, workspace_id: str) -> int:
    event = await add_photo(pool, workspace_id)
    await relay.drain()
    return event.id


async def prime(
    subscription: GrpcSubscription, pool: asyncpg.Pool, relay: OutboxRelay, workspace_id: str
) -> int:
    """Writes probe events until one arrives live, so the stream is surely subscribed.

    Returns the last probe's id: anything at or below it may or may not arrive."""
    for _ in range(40):
        probe_id = await publish_new_photo(pool, relay, workspace_id)
        with contextlib.suppress(TimeoutError):
            if await subscription.next(wait_s=0.5) is not None:
                return probe_id
    raise AssertionError(f"no live event of {workspace_id} arrived")


async def take_after(subscription: GrpcSubscription, marker: int, count: int) -> list[int]:
    """The ids of the next `count` events with ids above `marker`."""
    ids: list[int] = []
    while len(ids) < count:
        message = await subscription.next()
        assert message is not None, "stream ended early"
        if message.id > marker:
            ids.append(message.id)
    return ids


# --- gRPC Subscribe ---------------------------------------------------------------------------


async def test_live_events_reach_only_their_own_workspace(
    notifier: RunningNotifier, pool: asyncpg.Pool, relay: OutboxRelay
) -> None:
    ws_a, ws_b = new_workspace(), new_workspace()
    served = notifier.settings
    async with GrpcSubscription(served, ws_a) as sub_a, GrpcSubscription(served, ws_b) as sub_b:
        marker_a = await prime(sub_a, pool, relay, ws_a)
        marker_b = await prime(sub_b, pool, relay, ws_b)
        written: dict[str, list[int]] = {ws_a: [], ws_b: []}
        for _ in range(3):
            for workspace_id in (ws_a, ws_b):
                written[workspace_id].append((await add_photo(pool, workspace_id)).id)
        await relay.drain()

        # Interleaved writes: any event of B that leaked into A would show up before A's third.
        assert await take_after(sub_a, marker_a, 3) == written[ws_a]
        assert await take_after(sub_b, marker_b, 3) == written[ws_b]


async def test_resume_replays_then_continues_live_without_gap_or_duplicate(
    notifier: RunningNotifier, pool: asyncpg.Pool, relay: OutboxRelay
) -> None:
    workspace_id = new_workspace()
    first = [await add_photo(pool, workspace_id) for _ in range(6)]
    await relay.drain()
    resume_after = first[1].id
    enough_written = asyncio.Event()

    async def keep_writing() -> None:
        for n in range(30):
            await publish_new_photo(pool, relay, workspace_id)
            if n == 3:
                enough_written.set()
            await asyncio.sleep(0.01)

    writer = asyncio.create_task(keep_writing())
    try:
        await enough_written.wait()
        # Subscribing while events keep committing: some land in the replay, some arrive live,
        # some in both.
        served = notifier.settings
        async with GrpcSubscription(served, workspace_id, resume_after) as subscription:
            await writer
            expected = await event_ids_after(pool, workspace_id, resume_after)
            assert len(expected) == 4 + 30
            received = [m.id for m in await subscription.take(len(expected))]
            assert received == expected
            # And nothing extra after them: the next one is the next event written.
            later = await publish_new_photo(pool, relay, workspace_id)
            assert (await subscription.next()).id == later  # type: ignore[union-attr]
    finally:
        writer.cancel()
        await asyncio.wait({writer})


async def test_replay_then_live_drops_what_both_deliver(pool: asyncpg.Pool) -> None:
    """The switch itself, step by step: events that commit while a paged replay runs come
    both from the log and live, and each is yielded once, in order; then live ones flow."""
    hub = Hub()
    workspace_id = new_workspace()
    events = [await add_photo(pool, workspace_id) for _ in range(5)]
    live = hub.subscribe(workspace_id)
    stream = replay_then_live(pool, live, events[1].id, page_size=2)
    async with live, contextlib.aclosing(stream):
        assert (await anext(stream)).id == events[2].id  # subscribed; page one [2, 3] read
        assert hub.subscriber_count(workspace_id) == 1
        hub.publish(events[3])  # a live copy of an event the replay has read
        during_replay = await add_photo(pool, workspace_id)  # lands in page two
        hub.publish(during_replay)
        replayed = [(await anext(stream)).id for _ in range(3)]
        assert replayed == [events[3].id, events[4].id, during_replay.id]
        # Page three is read lazily, on the next step, so this one is in it and live, twice
        # (the broker delivers at least once).
        last_page = await add_photo(pool, workspace_id)
        hub.publish(last_page)
        hub.publish(last_page)
        assert (await anext(stream)).id == last_page.id
        live_only = await add_photo(pool, workspace_id)  # after the replay ended
        hub.publish(live_only)
        assert (await anext(stream)).id == live_only.id
    assert hub.subscriber_count(workspace_id) == 0


async def test_after_event_id_zero_sends_live_events_only(
    notifier: RunningNotifier, pool: asyncpg.Pool, relay: OutboxRelay
) -> None:
    workspace_id = new_workspace()
    for _ in range(3):
        await add_photo(pool, workspace_id)
    await relay.drain()
    async with GrpcSubscription(notifier.settings, workspace_id) as subscription:
        marker = await prime(subscription, pool, relay, workspace_id)
        live = await publish_new_photo(pool, relay, workspace_id)
        assert await take_after(subscription, marker, 1) == [live]


# --- SSE ----------------------------------------------------------------------------------------


async def test_sse_streams_the_same_events_as_grpc(
    notifier: RunningNotifier,
    pool: asyncpg.Pool,
    relay: OutboxRelay,
    store: ObjectStore,
    http: aiohttp.ClientSession,
) -> None:
    workspace_id = new_workspace()
    start = await publish_new_photo(pool, relay, workspace_id)
    uploaded = await add_photo(pool, workspace_id, item_id="item-7")
    await relay.drain()
    served = notifier.settings
    url = events_url(notifier, workspace_id, f"&last_event_id={start}")
    sse = await SseSubscription.open(http, url)
    try:
        async with GrpcSubscription(served, workspace_id, start) as grpc_sub:
            assert uploaded.photo is not None
            await put_thumbnails(store, workspace_id, uploaded.photo.id)
            ready = await mark_complete(pool, uploaded.photo)  # live, after the replayed one
            await relay.drain()
            grpc_events = await grpc_sub.take(2)
            sse_events = await sse.take_events(2)
    finally:
        await sse.close()

    assert [(m.id, m.type) for m in grpc_events] == [
        (uploaded.id, "photo.uploaded"),
        (ready.id, "photo.thumbnail_ready"),
    ]
    assert [(int(f.fields["id"]), f.fields["event"]) for f in sse_events] == [
        (m.id, m.type) for m in grpc_events
    ]
    data = json.loads(sse_events[1].fields["data"])
    assert data["photo_id"] == str(uploaded.photo.id) == grpc_events[1].photo_id
    assert data["item_id"] == "item-7"
    assert data["thumbnail_status"] == "complete"
    assert {t["size"] for t in data["thumbnails"]} == {"small", "medium", "large"}
    assert [t.url for t in grpc_events[1].photo.thumbnails] == [
        t["url"] for t in data["thumbnails"]
    ]
    headers = auth_headers(token_for(notifier.settings, workspace_id))
    async with http.get(data["thumbnails"][0]["url"], headers=headers) as response:
        assert response.status == 200
        assert response.content_type == "image/webp"


async def test_an_http10_sse_client_gets_bare_frames_replayed_then_live(
    notifier: RunningNotifier, pool: asyncpg.Pool, relay: OutboxRelay
) -> None:
    """HTTP/1.0 has no chunked bodies: the frames the hub writes straight to a caught-up
    stream's connection come as they are, after the replayed ones, each once and in order."""
    workspace_id = new_workspace()
    ids = [await publish_new_photo(pool, relay, workspace_id) for _ in range(3)]
    host, port = notifier.settings.gateway_addr.rsplit(":", 1)
    path = events_url(notifier, workspace_id, f"&last_event_id={ids[0]}")
    path = path.removeprefix(notifier.http)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.0 200") and b"chunked" not in head.lower()
        body = b""

        async def frames_until(count: int) -> list[bytes]:
            nonlocal body
            while body.count(b"id: ") < count:
                body += await asyncio.wait_for(reader.read(65536), 10)
            return [f for f in body.split(b"\n\n") if f]

        await frames_until(2)  # replayed: the stream has caught up
        ids += [await publish_new_photo(pool, relay, workspace_id) for _ in range(3)]
        frames = await frames_until(5)
        assert frames[0] == b"retry: 2000"
        events = [f for f in frames if f.startswith(b"id: ")]
        assert [int(f.split(b"\n")[0][4:]) for f in events] == ids[1:]
        assert all(f.split(b"\n")[2].startswith(b"data: {") for f in events)
    finally:
        writer.close()


async def test_sse_resumes_from_last_event_id_header_or_query(
    notifier: RunningNotifier, pool: asyncpg.Pool, relay: OutboxRelay, http: aiohttp.ClientSession
) -> None:
    workspace_id = new_workspace()
    ids = [await publish_new_photo(pool, relay, workspace_id) for _ in range(4)]
    cases = [
        ({"Last-Event-ID": str(ids[1])}, "", ids[2:]),
        ({}, f"&last_event_id={ids[0]}", ids[1:]),
        # A browser reconnecting sends the header and the page's original URL: header wins.
        ({"Last-Event-ID": str(ids[2])}, f"&last_event_id={ids[0]}", ids[3:]),
    ]
    for headers, query, expected in cases:
        sse = await SseSubscription.open(http, events_url(notifier, workspace_id, query), headers)
        try:
            frames = await sse.take_events(len(expected))
            assert [int(f.fields["id"]) for f in frames] == expected
            assert {f.fields["event"] for f in frames} == {str(EventType.UPLOADED)}
        finally:
            await sse.close()


async def test_sse_sends_heartbeats_on_an_idle_stream(
    notifier: RunningNotifier, http: aiohttp.ClientSession
) -> None:
    sse = await SseSubscription.open(http, events_url(notifier, new_workspace()))
    try:
        assert sse.response.headers["Content-Type"].startswith("text/event-stream")
        assert sse.response.headers["Cache-Control"] == "no-cache"
        assert sse.response.headers["X-Accel-Buffering"] == "no"
        first = await sse.next_frame()
        assert first is not None and first.fields == {"retry": "2000"}
        heartbeats = [await sse.next_frame(wait_s=5) for _ in range(2)]
        assert all(f is not None and f.comments == ["heartbeat"] for f in heartbeats)
    finally:
        await sse.close()


# --- thumbnails by URL --------------------------------------------------------------------------


async def test_thumbnail_is_404_until_complete_then_cached_bytes(
    notifier: RunningNotifier, pool: asyncpg.Pool, store: ObjectStore, http: aiohttp.ClientSession
) -> None:
    workspace_id = new_workspace()
    photo = (await add_photo(pool, workspace_id)).photo
    assert photo is not None
    url = f"{notifier.http}/v1/workspaces/{workspace_id}/photos/{photo.id}/thumbnails/medium"
    other = new_workspace()
    authed = auth_headers(token_for(notifier.settings, workspace_id, other))

    # Even with the bytes already in the store, a photo that is not complete has none.
    data = await put_thumbnails(store, workspace_id, photo.id)
    async with http.get(url, headers=authed) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_ready"

    await mark_complete(pool, photo)
    async with http.get(url, headers=authed) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/webp"
        # private: the bytes are a token holder's, never a shared cache's to hand out.
        assert response.headers["Cache-Control"] == "private, max-age=31536000, immutable"
        assert await response.read() == data
        etag = response.headers["ETag"]
    async with http.get(url, headers={**authed, "If-None-Match": etag}) as response:
        assert response.status == 304
        assert response.headers["ETag"] == etag
        assert await response.read() == b""
    async with http.get(url, headers={**authed, "If-None-Match": '"something-else"'}) as r:
        assert r.status == 200

    # Asked for under another workspace the token lists: no such photo there.
    other_workspace = url.replace(f"/workspaces/{workspace_id}/", f"/workspaces/{other}/")
    async with http.get(other_workspace, headers=authed) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


# --- invalid input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("workspace_id", "after_event_id", "says"),
    [("", 0, "workspace_id is required"), ("no spaces", 0, "workspace_id"), ("ws", -1, "after")],
)
async def test_subscribe_rejects_invalid_input(
    notifier: RunningNotifier, workspace_id: str, after_event_id: int, says: str
) -> None:
    async with GrpcSubscription(notifier.settings, workspace_id, after_event_id) as subscription:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await subscription.call.read()
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert says in (failure.value.details() or "")


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/v1/workspaces/ws/events", {"Last-Event-ID": "abc"}, 400),
        ("/v1/workspaces/ws/events?last_event_id=-1", {}, 400),
        ("/v1/workspaces/-ws/events", {}, 400),
        (f"/v1/workspaces/ws/photos/{uuid.uuid4()}/thumbnails/huge", {}, 400),
        ("/v1/workspaces/ws/photos/not-a-uuid/thumbnails/small", {}, 400),
        ("/v1/nothing-here", {}, 404),
    ],
)
async def test_gateway_rejects_invalid_input_with_json_errors(
    notifier: RunningNotifier,
    http: aiohttp.ClientSession,
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    authed = {**headers, **auth_headers(token_for(notifier.settings, "ws"))}
    async with http.get(f"{notifier.http}{path}", headers=authed) as response:
        assert response.status == status
        error = (await response.json())["error"]
        assert error["code"] and error["message"]


# --- health, reflection, bad messages -----------------------------------------------------------


async def test_health_and_reflection_answer_on_the_grpc_port(
    notifier: RunningNotifier, http: aiohttp.ClientSession
) -> None:
    async with grpc.aio.insecure_channel(notifier.settings.notifier_addr) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "thumbwire.v1.NotifierService"):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for reply in reflection.ServerReflectionInfo(iter([request]), timeout=5):
            names = {s.name for s in reply.list_services_response.service}
            break
    assert "thumbwire.v1.NotifierService" in names
    assert "grpc.health.v1.Health" in names
    async with http.get(f"{notifier.http}/healthz") as response:
        assert response.status == 200


async def test_a_message_that_is_no_event_is_dropped_and_consuming_goes_on(
    notifier: RunningNotifier, pool: asyncpg.Pool, relay: OutboxRelay, exchanges: dict
) -> None:
    workspace_id = new_workspace()
    after = await publish_new_photo(pool, relay, workspace_id)
    async with GrpcSubscription(notifier.settings, workspace_id, after) as sub:
        for body in (b"not json", b"[1, 2]", b'{"id": "x"}'):
            await exchanges["events"].publish(Message(body), routing_key="photo.uploaded")
        good = await publish_new_photo(pool, relay, workspace_id)
        assert (await sub.next()).id == good  # type: ignore[union-attr]


class RecordingHub(Hub):
    """The hub, and the ids of the events the consumer gave it."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[int] = []

    def publish(self, event: EventRecord) -> None:
        self.ids.append(event.id)
        super().publish(event)


async def test_deliveries_are_acked_in_batches_and_none_waits_long(
    settings: Settings,
    amqp: AbstractRobustConnection,
    topology: Topology,
    pool: asyncpg.Pool,
    relay: OutboxRelay,
) -> None:
    """Ten events with a prefetch of 8 (acks of 4 at once): all arrive, so acks went out
    before the window filled; and soon after the last, none is left unacked, so the tail of
    a batch is acked on its own."""
    hub = RecordingHub()
    consumer = EventConsumer(amqp, topology, hub, new_instance_id(), prefetch_count=8)
    await consumer.start()
    try:
        workspace_id = new_workspace()
        written = [(await add_photo(pool, workspace_id)).id for _ in range(10)]
        await relay.drain()

        async def all_arrived() -> bool:
            return set(written) <= set(hub.ids)

        await until(all_arrived, True, timeout_s=10)
        await asyncio.sleep(4 * ACK_AFTER_S)
        assert (await queues("messages_unacknowledged"))[consumer.queue_name] == "0"
    finally:
        await consumer.close()


# --- faults and shutdown ------------------------------------------------------------------------


async def broker_connections(name_part: str) -> set[str]:
    """The broker's ids of the connections whose client name contains `name_part`."""
    listing = await run_rabbitmqctl(
        "list_connections", "pid", "client_properties", "-q", "--no-table-headers"
    )
    return {line.split()[0] for line in listing.splitlines() if name_part in line}


async def queues(column: str) -> dict[str, str]:
    """The broker's queues by name, each with its `column` of `rabbitmqctl list_queues`."""
    listing = await run_rabbitmqctl("list_queues", "name", column, "-q", "--no-table-headers")
    return dict(line.split() for line in listing.splitlines() if line.strip())


async def run_rabbitmqctl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_broker_reconnect_ends_streams_and_resume_fills_the_gap(
    settings: Settings, pool: asyncpg.Pool, relay: OutboxRelay, exchanges: dict
) -> None:
    """Events published while the notifier's queue is gone never reach it; the streams end on
    reconnect so that clients resume from their last id and get them from the log."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("needs rabbitmqctl to make the broker drop a connection")
    name = f"thumbwire-notifier {settings.namespace}"
    others = await broker_connections(name)
    running = await start_notifier(settings)
    try:
        (connection,) = await broker_connections(name) - others
        workspace_id = new_workspace()
        served = running.settings
        seen = await publish_new_photo(pool, relay, workspace_id)
        async with GrpcSubscription(served, workspace_id, seen - 1) as subscription:
            assert (await subscription.next()).id == seen  # type: ignore[union-attr]
            # The broker itself drops this notifier's connection, and with it its queue.
            await run_rabbitmqctl("close_connection", connection, "thumbwire notifier test")
            missed = await publish_new_photo(pool, relay, workspace_id)
            end = await subscription.next(wait_s=20)
            assert end is None or end.id == missed  # delivered only if it beat the close
            if end is not None:
                assert await subscription.next(wait_s=20) is None
            assert await subscription.call.code() == grpc.StatusCode.OK
        async with GrpcSubscription(served, workspace_id, seen) as resumed:
            assert (await resumed.next()).id == missed  # type: ignore[union-attr]
            live = await publish_new_photo(pool, relay, workspace_id)
            assert (await resumed.next()).id == live  # type: ignore[union-attr]
    finally:
        await running.close()


@pytest.fixture
def broker_proxy(settings: Settings) -> Iterator[TcpProxy]:
    proxy = TcpProxy.in_front_of(settings.amqp_url)
    yield proxy
    proxy.stop()


async def test_a_delivery_before_the_reconnect_callbacks_ends_the_streams_first(
    settings: Settings,
    topology: Topology,
    pool: asyncpg.Pool,
    relay: OutboxRelay,
    broker_proxy: TcpProxy,
) -> None:
    """aio-pika restores the queue and its consumer, then calls the reconnect callbacks. An
    event delivered in between must not reach a stream that missed what was published while the
    queue was gone: its client would resume after that event and skip the missed ones."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("needs rabbitmqctl to see the notifier's queue go")
    url = broker_proxy.url_through(settings.amqp_url)
    connection = await broker.connect(url, "thumbwire-notifier-gap-test")
    hub = RecordingHub()
    consumer = EventConsumer(connection, topology, hub, new_instance_id())
    await consumer.start()
    restored, release = asyncio.Event(), asyncio.Event()

    async def hold_the_reconnect_callbacks(*_args: object) -> None:
        restored.set()  # the consumer is delivering again; the connection's callbacks wait
        await release.wait()

    # The consumer's channel: its reopen callbacks run within the connection's restore.
    consumer._channel.reopen_callbacks.add(hold_the_reconnect_callbacks)  # type: ignore[union-attr]

    async def queue_bound() -> bool:
        return consumer.queue_name in await queues("consumers")

    async def cut_off() -> None:
        """Returns once the consumer's queue is gone; its reconnects are refused meanwhile."""
        restored.clear()
        broker_proxy.cut()
        await until(queue_bound, False, timeout_s=20)

    async def let_back() -> None:
        """Returns once the consumer is delivering again."""
        broker_proxy.restore()
        async with asyncio.timeout(20):
            await restored.wait()

    try:
        workspace_id = new_workspace()
        stream = hub.subscribe(workspace_id)
        first = await publish_new_photo(pool, relay, workspace_id)
        await eventually(lambda: first in hub.ids)
        await cut_off()
        missed = await publish_new_photo(pool, relay, workspace_id)
        await let_back()
        after = await publish_new_photo(pool, relay, workspace_id)
        await eventually(lambda: after in hub.ids)
        assert missed not in hub.ids  # published while no queue was bound

        assert stream.closed, "a stream that missed an event was open when the new queue's came"
        delivered = [item.id async for item in stream if isinstance(item, EventRecord)]
        assert delivered == [first]  # ended before `after`: its client resumes after `first`
        opened_before = hub.subscribe(workspace_id)
        release.set()
        await eventually(lambda: opened_before.closed)  # by the reconnect callbacks

        # A second outage, with no delivery before the callbacks: they end the streams opened
        # before them, and none opened after.
        opened_before = hub.subscribe(workspace_id)
        await cut_off()
        await let_back()
        await eventually(lambda: opened_before.closed)
        opened_after = hub.subscribe(workspace_id)
        last = await publish_new_photo(pool, relay, workspace_id)
        await eventually(lambda: last in hub.ids)
        assert not opened_after.closed
        assert (await anext(opened_after)).id == last  # type: ignore[union-attr]
    finally:
        release.set()
        await consumer.close()
        await connection.close()


async def test_stop_ends_open_streams_and_serve_returns(
    settings: Settings, pool: asyncpg.Pool, relay: OutboxRelay, http: aiohttp.ClientSession
) -> None:
    running = await start_notifier(settings)
    workspace_id = new_workspace()
    seen = await publish_new_photo(pool, relay, workspace_id)
    try:
        async with GrpcSubscription(running.settings, workspace_id, seen - 1) as sub:
            sse = await SseSubscription.open(
                http, events_url(running, workspace_id), {"Last-Event-ID": str(seen - 1)}
            )
            try:
                assert (await sub.next()).id == seen  # type: ignore[union-attr]
                assert int((await sse.take_events(1))[0].fields["id"]) == seen
                running.stop.set()
                await asyncio.wait_for(running.task, 30)
                assert await sub.next() is None
                assert await sub.call.code() == grpc.StatusCode.OK
                while (frame := await sse.next_frame()) is not None:
                    assert not frame.is_event
            finally:
                await sse.close()
    finally:
        await running.close()


# --- token expiry ---------------------------------------------------------------------------------


def expiring_token(settings: Settings, workspace_id: str, valid_for_s: float) -> str:
    """A token that verify() accepts for about `valid_for_s` more seconds (its exp already
    passed, within the leeway for clock skew)."""
    assert settings.auth_secret
    issued = time.time() - LEEWAY_S - 1 + valid_for_s
    return TokenAuthority(settings.auth_secret).issue("ann", [workspace_id], 1, now=issued)


async def test_streams_end_when_their_token_expires(
    notifier: RunningNotifier, pool: asyncpg.Pool, relay: OutboxRelay, http: aiohttp.ClientSession
) -> None:
    """Events reach a stream until its token expires, then the stream ends: gRPC with
    UNAUTHENTICATED, SSE with the end of its body (EventSource's reconnect with that token is
    refused). A stream with a fresh token goes on."""
    settings, workspace_id = notifier.settings, new_workspace()
    token = expiring_token(settings, workspace_id, valid_for_s=3)
    events = f"{notifier.http}/v1/workspaces/{workspace_id}/events?access_token={token}"
    sse = await SseSubscription.open(http, events)
    try:
        async with (
            GrpcSubscription(settings, workspace_id, token=token) as expiring,
            GrpcSubscription(settings, workspace_id) as lasting,
        ):
            seen = await prime(expiring, pool, relay, workspace_id)
            async with asyncio.timeout(10):  # the SSE stream is live too
                # It may get the probes written before the gRPC stream was live, first.
                while int((await sse.next_event()).fields["id"]) < seen:  # type: ignore[union-attr]
                    pass
            ended_by = time.time() + 3 + 5
            while await expiring.next(wait_s=10) is not None:
                pass  # its events, until its token expires
            assert time.time() < ended_by
            assert await expiring.call.code() == grpc.StatusCode.UNAUTHENTICATED
            assert await expiring.call.details() == STREAM_TOKEN_EXPIRED
            async with asyncio.timeout(10):
                while await sse.next_frame() is not None:
                    pass  # heartbeats, then the end of the body
            after = await publish_new_photo(pool, relay, workspace_id)
            while (message := await lasting.next()) is not None and message.id < after:
                pass
            assert message is not None and message.id == after
            refused = await http.get(events)
            assert refused.status == 401
    finally:
        await sse.close()


async def test_watch_resubscribes_with_a_new_token_when_its_own_expires(
    notifier: RunningNotifier,
    pool: asyncpg.Pool,
    relay: OutboxRelay,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`thumbwire watch`, signing its own tokens, prints every event once across the end of a
    stream whose token expired: it subscribes again after the last event it printed."""
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    monkeypatch.setattr(credentials, "OWN_TOKEN_TTL_S", 1.0)  # valid 1 s, plus the leeway
    workspace_id = new_workspace()
    before = await publish_new_photo(pool, relay, workspace_id)  # after_event_id 0 replays none
    first = await publish_new_photo(pool, relay, workspace_id)
    args = argparse.Namespace(workspace=workspace_id, after=before, token=None)
    watching = asyncio.create_task(watch.run(notifier.settings, args))
    out, err = "", ""
    try:
        async with asyncio.timeout(20):
            while "subscribing again after event" not in err:
                await asyncio.sleep(0.2)
                captured = capsys.readouterr()
                out, err = out + captured.out, err + captured.err
            second = await publish_new_photo(pool, relay, workspace_id)
            while second not in printed_ids(out):
                await asyncio.sleep(0.2)
                out += capsys.readouterr().out
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    assert printed_ids(out) == [first, second]
    assert f"the stream's token expired; subscribing again after event {first}" in err


def printed_ids(out: str) -> list[int]:
    """The event ids of `thumbwire watch` lines (each starts with the id and a tab)."""
    return [int(line.split("\t")[0]) for line in out.splitlines()]
