"""Bounded writes to a grpc.aio server stream.

grpc.aio completes `context.write` only once HTTP/2 flow control lets the message out, so a
client that stops reading holds the writing handler for ever. And a pending write cannot be
taken back: grpc.aio has no server-side cancel, and core refuses to send a status while a
message is in flight (ExecuteBatchError). So a write that passes the timeout is left pending,
the caller releases everything else it holds (subscription, queued events), and only then
waits for that one message: the client takes it when it reads again and is then told to resume,
or the call ends when the client goes away (or when keepalive finds the connection dead)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc


class WriteStalled(Exception):
    """A write waited the whole timeout; `pending` is the write, still in flight."""

    def __init__(self, pending: asyncio.Future[None], timeout_s: float) -> None:
        super().__init__(f"the client took no message for {timeout_s:g} s")
        self.pending = pending


async def write_bounded(context: grpc.aio.ServicerContext, message: Any, timeout_s: float) -> None:
    """`context.write(message)`; WriteStalled when it has not completed within `timeout_s`."""
    pending = asyncio.ensure_future(context.write(message))
    try:
        done, _ = await asyncio.wait({pending}, timeout=timeout_s)
    except asyncio.CancelledError:
        pending.cancel()
        raise
    if not done:
        raise WriteStalled(pending, timeout_s)
    pending.result()


async def finish_stalled(stalled: WriteStalled) -> None:
    """Waits until the stalled write completes, or the call ends (then it is cancelled)."""
    try:
        await stalled.pending
    except asyncio.CancelledError:
        stalled.pending.cancel()
        raise
