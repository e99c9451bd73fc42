"""The notifier's in-process parts: the hub's bounded fan-out, its heartbeats, and the direct
writes of caught-up SSE streams."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from datetime import UTC, datetime

import pytest

from services.core.events import EventRecord, EventType
from services.notifier import sse
from services.notifier.encodings import EventEncodings
from services.notifier.hub import HEARTBEAT, Heartbeat, Hub
from services.notifier.sse_stream import DirectFrames, chunk, frame_encoder
from services.notifier.stream import replay_then_live
from tests.support.sockets import connected_transport, read_all


def event(event_id: int, workspace_id: str = "ws") -> EventRecord:
    return EventRecord(
        id=event_id,
        type=EventType.UPLOADED,
        workspace_id=workspace_id,
        photo_id=uuid.uuid4(),
        item_id="item",
        photo=None,
        error="",
        occurred_at=datetime.now(UTC),
    )


async def test_publish_reaches_only_the_events_workspace() -> None:
    hub = Hub()
    async with hub.subscribe("a") as a, hub.subscribe("b") as b:
        hub.publish(event(1, "a"))
        hub.publish(event(2, "b"))
        assert (await anext(a)).id == 1
        assert (await anext(b)).id == 2
    assert hub.subscriber_count() == 0


async def test_a_full_subscriber_is_closed_without_blocking_the_others() -> None:
    hub = Hub(max_pending=2)
    slow, fast = hub.subscribe("ws"), hub.subscribe("ws")
    for n in range(1, 4):
        hub.publish(event(n))  # returns at once even though `slow` never reads
        assert (await anext(fast)).id == n
    assert slow.overflowed and slow.closed
    assert [e.id async for e in slow] == [1, 2]  # what it had, then the end
    assert not fast.closed
    assert hub.subscriber_count("ws") == 1


async def test_a_closed_hub_ends_streams_and_refuses_new_ones() -> None:
    hub = Hub()
    open_before = hub.subscribe("ws")
    hub.close()
    assert [e async for e in open_before] == []
    assert [e async for e in hub.subscribe("ws")] == []
    assert hub.subscriber_count() == 0


async def test_a_subscription_ends_when_its_token_expires() -> None:
    hub = Hub()
    expiring, other = hub.subscribe("ws"), hub.subscribe("ws")
    expiring.expire_at(time.time() + 0.2)
    hub.publish(event(1))
    assert (await anext(expiring)).id == 1
    async with asyncio.timeout(2):
        assert [e async for e in expiring] == []  # ended, at its deadline
    assert expiring.expired and expiring.closed
    assert not other.closed and not other.expired
    assert hub.subscriber_count("ws") == 1


async def test_a_subscription_closed_before_its_expiry_is_not_marked_expired() -> None:
    hub = Hub()
    subscription = hub.subscribe("ws")
    subscription.expire_at(time.time() + 0.05)
    subscription.close()
    await asyncio.sleep(0.15)
    assert subscription.closed and not subscription.expired


async def test_a_quiet_subscription_gets_a_heartbeat_every_second_beat() -> None:
    hub = Hub()
    quiet, busy = hub.subscribe("ws"), hub.subscribe("other")
    for n in range(1, 5):
        hub.publish(event(n, "other"))  # `busy` is offered an event before every beat
        hub.beat()
    # Subscribing counts as fresh: beats 2 and 4 find `quiet` quiet; `busy` never is.
    assert [await anext(quiet), await anext(quiet)] == [HEARTBEAT, HEARTBEAT]
    assert [(await anext(busy)).id for _ in range(4)] == [1, 2, 3, 4]  # type: ignore[union-attr]
    hub.close()
    assert [item async for item in quiet] == [] and [item async for item in busy] == []


async def test_heartbeats_reach_the_stream_as_none_between_events() -> None:
    hub = Hub()
    async with hub.subscribe("ws") as live:
        stream = replay_then_live(None, live, 0)  # type: ignore[arg-type] (no replay: no pool)
        hub.beat()
        hub.beat()  # quiet since the first: a heartbeat
        hub.publish(event(1))
        assert await anext(stream) is None
        assert (await anext(stream)).id == 1  # type: ignore[union-attr]
        await stream.aclose()


async def test_a_beat_that_overflows_a_queue_closes_that_subscription_only() -> None:
    hub = Hub(max_pending=1)
    stuck = hub.subscribe("ws")
    for _ in range(6):
        hub.beat()  # never read: the second heartbeat has no room
    assert stuck.overflowed and stuck.closed
    assert hub.subscriber_count() == 0


class RecordingSink:
    """A DirectWriter that takes what `accept` allows, as a transport with room would."""

    def __init__(self) -> None:
        self.last_id = 0
        self.accept = True
        self.written: list[int | None] = []  # event ids; None for a heartbeat

    def __call__(self, item: EventRecord | Heartbeat) -> bool:
        if isinstance(item, Heartbeat):
            if self.accept:
                self.written.append(None)
            return self.accept
        if item.id <= self.last_id:
            return True
        if self.accept:
            self.written.append(item.id)
            self.last_id = item.id
        return self.accept


async def test_a_caught_up_stream_takes_events_directly_in_order_and_once() -> None:
    hub = Hub()
    sink = RecordingSink()
    async with hub.subscribe("ws") as live:
        stream = replay_then_live(None, live, 0, direct=sink)  # type: ignore[arg-type]
        hub.publish(event(1))
        hub.publish(event(2))  # queued before the stream runs: it yields both, then goes direct
        assert [(await anext(stream)).id, (await anext(stream)).id] == [1, 2]  # type: ignore[union-attr]
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)  # the stream has drained its queue and handed over
        for n in (3, 2, 4):  # 2 again: the broker delivers at least once
            hub.publish(event(n))
        hub.beat()
        hub.beat()  # quiet since the event: a heartbeat, written directly too
        assert sink.written == [3, 4, None]
        sink.accept = False  # the transport is full: the next event goes to the stream's task
        hub.publish(event(5))
        hub.publish(event(6))  # queued behind it, not written directly
        assert (await waiting).id == 5  # type: ignore[union-attr]
        assert (await anext(stream)).id == 6  # type: ignore[union-attr]
        sink.accept = True
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        hub.publish(event(6))  # a copy of what the stream wrote: dropped
        hub.publish(event(7))
        assert sink.written == [3, 4, None, 7]
        hub.close()
        with pytest.raises(StopAsyncIteration):
            await waiting  # closing the hub ends a direct stream too


@pytest.mark.parametrize("chunked", [False, True])
async def test_direct_frames_write_what_fits_and_refuse_the_rest(chunked: bool) -> None:
    async with connected_transport(high=64 * 1024) as (transport, peer):
        frames = DirectFrames(transport, EventEncodings(), "http://x", chunked)
        frames.last_id = 1
        assert frames(event(1))  # already written: dropped, nothing sent
        second = event(2)
        assert frames(second) and frames(HEARTBEAT)
        frame, heartbeat = frame_encoder("http://x")(second), sse.comment_frame("heartbeat")
        body = chunk(frame) + chunk(heartbeat) if chunked else frame + heartbeat
        assert read_all(peer) == body and frames.last_id == 2
        assert transport.get_write_buffer_size() == 0  # straight to the socket

        # A peer that stops reading: the socket takes part, the transport buffers the rest,
        # and later frames go behind it, in order, until the high-water mark.
        sent = []
        next_id = 3
        while transport.get_write_buffer_size() == 0:
            assert frames(event(next_id))
            sent.append(next_id)
            next_id += 1
        while frames(event(next_id)):
            sent.append(next_id)
            next_id += 1
        refused = next_id
        refused_frame = frame_encoder("http://x")(event(refused))
        refused_size = len(chunk(refused_frame) if chunked else refused_frame)
        assert transport.get_write_buffer_size() + refused_size >= 64 * 1024
        assert frames.last_id == sent[-1]

        received = b""
        async with asyncio.timeout(10):
            while transport.get_write_buffer_size():
                received += read_all(peer)
                await asyncio.sleep(0.01)
        received += read_all(peer)
        ids = [int(line[4:]) for line in received.split(b"\n") if line.startswith(b"id: ")]
        assert ids == sent and refused not in ids

        transport.close()
        assert not frames(event(refused)) and not frames(HEARTBEAT)  # closing: refused


async def test_direct_frames_never_write_to_a_closed_connections_descriptor() -> None:
    """A stream's sink outlives its connection for a moment (the handler ends a few loop turns
    after the connection is lost); the kernel may by then have given the descriptor's number to
    a new connection, which must get nothing."""
    async with connected_transport(high=64 * 1024) as (transport, peer):
        frames = DirectFrames(transport, EventEncodings(), "http://x", chunked=False)
        assert frames(event(1)) and read_all(peer)  # caught up: straight to the socket
        number = transport.get_extra_info("socket").fileno()
        transport.close()
        await asyncio.sleep(0)  # the transport closes its socket
        newcomer, other_end = socket.socketpair()
        with newcomer, other_end:
            if newcomer.fileno() != number:  # the usual case: the lowest free number
                newcomer, other_end = other_end, newcomer
            assert number in (newcomer.fileno(), other_end.fileno())
            other_end.setblocking(False)
            newcomer.setblocking(False)
            assert not frames(event(2)) and not frames(HEARTBEAT)  # closed: refused
            assert read_all(other_end) == b"" and read_all(newcomer) == b""
            assert frames.last_id == 1
