"""Replay then live: the logic behind Subscribe and the SSE stream, free of gRPC and HTTP.

Event ids are row ids, and within a workspace id order is commit order (services.core.events),
so "every event after N" is exact: subscribe to live events first, replay the log from
PostgreSQL, then pass on live events newer than the last one sent. An event that commits
during the replay is either in a replayed page or arrives live after it; the id check drops
the copies that are in both.

A stream may also give a direct writer: once the live queue is empty (the replay has caught up
with it), the hub hands later items to that writer, which writes them from the hub's loop and
applies the same id check; the first item it cannot write without waiting comes back through the
queue, and so here again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import asyncpg

from services.core.events import EventRecord
from services.core.retention import log_page, stream_reset
from services.notifier.hub import DirectSink, Heartbeat, Subscription

REPLAY_PAGE_SIZE = 500


class DirectWriter(DirectSink, Protocol):
    """A DirectSink that drops events not newer than `last_id`, and advances it."""

    last_id: int


async def replay_then_live(
    pool: asyncpg.Pool,
    live: Subscription,
    after_event_id: int,
    page_size: int = REPLAY_PAGE_SIZE,
    direct: DirectWriter | None = None,
) -> AsyncIterator[EventRecord | None]:
    """The subscription's workspace's events after `after_event_id` (0: live ones only),
    oldest first, and None for each heartbeat of the hub (the stream has been quiet).
    `live` must be subscribed before this starts, and is the caller's to close; a caller tells
    its client it is subscribed between the two.

    Ends when the hub ends the subscription (overflow, broker reconnect, shutdown)."""
    last_id = after_event_id
    if after_event_id > 0:
        async for event in replay(pool, live.workspace_id, after_event_id, page_size):
            yield event
            last_id = event.id
    while True:
        if direct is not None:
            # Resumed: the last item yielded has been written. No await until go_direct.
            direct.last_id = last_id
            live.go_direct(direct)  # nothing changes while items are queued
        try:
            item = await anext(live)
        except StopAsyncIteration:
            return
        if direct is not None:
            last_id = max(last_id, direct.last_id)  # what it wrote meanwhile
        if isinstance(item, Heartbeat):
            yield None
        elif item.id > last_id:
            yield item
            last_id = item.id


async def replay(
    pool: asyncpg.Pool, workspace_id: str, after_event_id: int, page_size: int
) -> AsyncIterator[EventRecord]:
    """Every stored event of the workspace after the given id, page by page; first a
    stream.reset if events after that id have been pruned (and then those after the reset)."""
    cursor = after_event_id
    while True:
        page = await log_page(pool, workspace_id, cursor, page_size)
        if page.horizon > cursor:
            yield stream_reset(workspace_id, page.horizon)
            cursor = page.horizon
        for event in page.events:
            if event.id > cursor:
                yield event
                cursor = event.id
        if len(page.events) < page_size:
            return
