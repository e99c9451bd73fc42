"""Replay then live: the logic behind Subscribe and the SSE stream, free of gRPC and HTTP.

Event ids are row ids, and within a workspace id order is commit order (services.core.events),
so "every event after N" is exact: subscribe to live events first, replay the log from
PostgreSQL, then pass on live events newer than the last one sent. An event that commits
during the replay is either in a replayed page or arrives live after it; the id check drops
the copies that are in both."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg

from services.core.events import EventRecord
from services.core.retention import log_page, stream_reset
from services.notifier.hub import Heartbeat, Subscription

REPLAY_PAGE_SIZE = 500


async def replay_then_live(
    pool: asyncpg.Pool,
    live: Subscription,
    after_event_id: int,
    page_size: int = REPLAY_PAGE_SIZE,
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
    async for item in live:
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
