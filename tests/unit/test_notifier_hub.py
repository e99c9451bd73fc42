"""The notifier's in-process parts: the hub's bounded fan-out and the heartbeat interleaving."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from services.core.events import EventRecord, EventType
from services.notifier.hub import Hub
from services.notifier.stream import with_heartbeats


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


async def test_heartbeats_fill_idle_time_and_closing_closes_the_source() -> None:
    closed = asyncio.Event()

    async def slow_source() -> AsyncIterator[int]:
        try:
            yield 1
            await asyncio.sleep(0.25)
            yield 2
            await asyncio.sleep(3600)
            yield 3
        finally:
            closed.set()

    frames = with_heartbeats(slow_source(), 0.05)
    seen = [await anext(frames)]
    while (item := await anext(frames)) is None:
        seen.append(item)
    seen.append(item)
    assert seen[0] == 1 and seen[-1] == 2 and None in seen
    assert await anext(frames) is None  # idle again: a heartbeat, the source still pending
    await frames.aclose()
    assert closed.is_set()
