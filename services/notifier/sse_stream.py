"""Writes one SSE response body: each event as a frame (encoded once for all streams), a
heartbeat comment whenever the hub says the stream is quiet, and every write bounded in time.

A client that stops reading (a frozen tab, a phone that lost its radio without a FIN) fills the
kernel's buffers, and then aiohttp's `write` waits for it for ever, holding the handler, its
subscription and the buffered frames. A write that has not finished within the timeout drops
the connection instead; the client resumes from its Last-Event-ID and the log replays the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import AsyncIterator

from aiohttp import web

from services.core import convert
from services.core.events import EventRecord
from services.notifier import sse
from services.notifier.encodings import EventEncodings

log = logging.getLogger(__name__)

# SO_LINGER on, timeout 0: close() resets the connection and frees its send buffer at once,
# instead of leaving the kernel to push it to a peer that reads nothing.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


class ClientStalled(ConnectionAbortedError):
    """The client took no bytes for the write timeout; its connection has been dropped."""


async def write_frames(
    request: web.Request,
    response: web.StreamResponse,
    events: AsyncIterator[EventRecord | None],
    *,
    encodings: EventEncodings,
    base_url: str,
    write_timeout_s: float,
) -> None:
    """Writes each event as a frame, and a heartbeat comment for each None (the hub's
    heartbeats, stream.replay_then_live). Raises ClientStalled when a write passes
    `write_timeout_s`."""
    heartbeat = sse.comment_frame("heartbeat")

    def encode(event: EventRecord) -> bytes:
        return sse.event_frame(event.id, str(event.type), convert.event_to_json(event, base_url))

    async with contextlib.aclosing(events):
        async for event in events:
            frame = heartbeat if event is None else encodings.get(event, base_url, encode)
            await write_bounded(request, response, frame, write_timeout_s)


async def write_bounded(
    request: web.Request, response: web.StreamResponse, data: bytes, timeout_s: float
) -> None:
    """`response.write(data)`, which waits only while the client's buffers are full; when that
    lasts `timeout_s`, the connection is reset and ClientStalled raised."""
    if _fits(request, data):  # cannot wait: no timer (the common case, and a cost per write)
        await response.write(data)
        return
    try:
        async with asyncio.timeout(timeout_s):
            await response.write(data)
    except TimeoutError:
        reset_connection(request)
        raise ClientStalled(f"the client took nothing for {timeout_s:g} s") from None


def _fits(request: web.Request, data: bytes) -> bool:
    """Whether the transport takes `data` without pausing the writer (below its high-water
    mark even with it), so that aiohttp's write returns without waiting for the client."""
    transport = request.transport
    if transport is None or transport.is_closing():
        return False
    _low, high = transport.get_write_buffer_limits()
    return transport.get_write_buffer_size() + len(data) < high


def reset_connection(request: web.Request) -> None:
    """Closes the request's connection with a reset, discarding what it has not sent."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
    transport.abort()
