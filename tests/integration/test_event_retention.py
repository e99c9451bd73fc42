"""The event log kept to its retention against the real database: old rows pruned, each
workspace's horizon moved, and a resume from before the horizon told so with stream.reset."""

from __future__ import annotations

import uuid

import aiohttp
import asyncpg

from services.core.events import EventType
from services.core.retention import horizon, prune_events
from services.notifier.stream import replay
from tests.integration.conftest import Services
from tests.support.auth import auth_headers, token_for
from tests.support.events_seed import add_photo, event_ids_after
from tests.support.streams import GrpcSubscription, SseSubscription

RETENTION_S = 3600.0


def new_workspace() -> str:
    return f"ws-{uuid.uuid4().hex[:8]}"


async def _make_old(pool: asyncpg.Pool, ids: list[int]) -> None:
    await pool.execute(
        "UPDATE events SET occurred_at = occurred_at - interval '2 hours' WHERE id = ANY($1)",
        ids,
    )


async def _events_of(pool: asyncpg.Pool, ws: str, count: int) -> list[int]:
    return [(await add_photo(pool, ws)).id for _ in range(count)]


async def test_pruning_removes_old_events_and_moves_each_workspace_horizon(
    pool: asyncpg.Pool,
) -> None:
    ws, other = new_workspace(), new_workspace()
    old = await _events_of(pool, ws, 3)
    other_old = await _events_of(pool, other, 2)
    kept = await _events_of(pool, ws, 2)
    await _make_old(pool, old + other_old)

    assert await prune_events(pool, RETENTION_S, batch_size=2) >= 5  # several batches

    assert await event_ids_after(pool, ws, 0) == kept
    assert await event_ids_after(pool, other, 0) == []
    assert await horizon(pool, ws) == old[-1]
    assert await horizon(pool, other) == other_old[-1]
    assert await horizon(pool, new_workspace()) == 0


async def test_a_resume_from_before_the_horizon_gets_stream_reset_first(
    pool: asyncpg.Pool,
) -> None:
    ws = new_workspace()
    old = await _events_of(pool, ws, 3)
    kept = await _events_of(pool, ws, 3)
    await _make_old(pool, old)
    await prune_events(pool, RETENTION_S)

    events = [e async for e in replay(pool, ws, old[0], page_size=2)]

    assert events[0].type == EventType.STREAM_RESET
    assert events[0].id == old[-1] and events[0].workspace_id == ws
    assert [e.id for e in events[1:]] == kept


async def test_a_resume_within_the_history_kept_gets_no_reset(pool: asyncpg.Pool) -> None:
    ws = new_workspace()
    old = await _events_of(pool, ws, 2)
    kept = await _events_of(pool, ws, 3)
    await _make_old(pool, old)
    await prune_events(pool, RETENTION_S)

    assert [e.id async for e in replay(pool, ws, old[-1], page_size=2)] == kept
    assert [e.id async for e in replay(pool, ws, kept[0], page_size=2)] == kept[1:]


async def test_events_within_the_retention_are_never_pruned(pool: asyncpg.Pool) -> None:
    ws = new_workspace()
    recent = await _events_of(pool, ws, 3)
    await prune_events(pool, RETENTION_S)
    assert await event_ids_after(pool, ws, 0) == recent
    assert await horizon(pool, ws) == 0


async def test_both_stream_apis_send_stream_reset_then_the_kept_events(
    services: Services, pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    ws = new_workspace()
    old = await _events_of(pool, ws, 2)
    kept = await _events_of(pool, ws, 2)
    await _make_old(pool, old)
    await prune_events(pool, RETENTION_S)
    settings = services.settings

    async with GrpcSubscription(settings, ws, after_event_id=old[0]) as grpc_stream:
        received = await grpc_stream.take(3)
    assert [(e.type, e.id) for e in received] == [
        ("stream.reset", old[-1]),
        ("photo.uploaded", kept[0]),
        ("photo.uploaded", kept[1]),
    ]
    assert received[0].workspace_id == ws and not received[0].HasField("photo")

    url = f"http://{settings.gateway_addr}/v1/workspaces/{ws}/events"
    headers = {**auth_headers(token_for(settings, ws)), "Last-Event-ID": str(old[0])}
    sse = await SseSubscription.open(http, url, headers)
    try:
        frames = await sse.take_events(3)
    finally:
        await sse.close()
    assert [(f.fields["event"], int(f.fields["id"])) for f in frames] == [
        ("stream.reset", old[-1]),
        ("photo.uploaded", kept[0]),
        ("photo.uploaded", kept[1]),
    ]
