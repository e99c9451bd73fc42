"""The notifier's in-process parts: the hub's bounded fan-out and its heartbeats."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.core.events import EventRecord, EventType
from services.notifier.hub import HEARTBEAT, Hub
from services.notifier.stream import replay_then_live


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
