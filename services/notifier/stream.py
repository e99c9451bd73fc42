"""Replay then live: the logic behind Subscribe and the SSE stream, free of gRPC and HTTP.

Event ids are row ids, and within a workspace id order is commit order (services.core.events),
so "every event after N" is exact: subscribe to live events first, replay the log from
PostgreSQL, then pass on live events newer than the last one sent. An event that commits
during the replay is either in a replayed page or arrives live after it; the id check drops
the copies that are in both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

import asyncpg

from services.core.events import EventRecord
from services.core.retention import log_page, stream_reset
from services.notifier.hub import Subscription

REPLAY_PAGE_SIZE = 500

T = TypeVar("T")


async def replay_then_live(
    pool: asyncpg.Pool,
    live: Subscription,
    after_event_id: int,
    page_size: int = REPLAY_PAGE_SIZE,
) -> AsyncIterator[EventRecord]:
    """The subscription's workspace's events after `after_event_id` (0: live ones only),
    oldest first. `live` must be subscribed before this starts, and is the caller's to close;
    a caller tells its client it is subscribed between the two.

    Ends when the hub ends the subscription (overflow, broker reconnect, shutdown)."""
    last_id = after_event_id
    if after_event_id > 0:
        async for event in replay(pool, live.workspace_id, after_event_id, page_size):
            yield event
            last_id = event.id
    async for event in live:
        if event.id > last_id:
            yield event
            last_id = event.id


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


async def with_heartbeats(items: AsyncIterator[T], interval_s: float) -> AsyncIterator[T | None]:
    """Yields the items, and None whenever `interval_s` passes without one.

    The pending read is a task this generator owns, so a heartbeat never cancels the inner
    iterator mid-step; closing this generator cancels the read and closes `items`."""
    pending: asyncio.Task[tuple[bool, T | None]] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.create_task(_next_item(items))
            done, _ = await asyncio.wait({pending}, timeout=interval_s)
            if not done:
                yield None
                continue
            finished, pending = pending, None
            has_item, item = finished.result()
            if not has_item:
                return
            yield item
    finally:
        await _cancel_and_close(pending, items)


async def _next_item(items: AsyncIterator[T]) -> tuple[bool, T | None]:
    try:
        return True, await anext(items)
    except StopAsyncIteration:
        return False, None


async def _cancel_and_close(
    pending: asyncio.Task[tuple[bool, T | None]] | None, items: AsyncIterator[T]
) -> None:
    if pending is not None:
        pending.cancel()
        # wait() rather than await: the read's own outcome is moot now, but a cancellation
        # of the caller must still propagate.
        await asyncio.wait({pending})
        if not pending.cancelled():
            pending.exception()  # retrieved, so asyncio does not log it as lost
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()
