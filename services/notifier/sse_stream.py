"""Writes one SSE response body: each event as a frame (encoded once for all streams), a
heartbeat comment whenever the hub says the stream is quiet, and every write bounded in time.

A client that stops reading (a frozen tab, a phone that lost its radio without a FIN) fills the
kernel's buffers, and then aiohttp's `write` waits for it for ever, holding the handler, its
subscription and the buffered frames. A write that has not finished within the timeout drops
the connection instead; the client resumes from its Last-Event-ID and the log replays the rest.

Once a stream is live and caught up, DirectFrames writes its frames from the hub's loop straight
to the connection's transport, with no task woken per event. It only writes what the transport
takes without pausing; anything else (a full buffer, a closing connection) goes back to the
stream's task and so to the bounded writes above, which drop a stalled client as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable

from aiohttp import hdrs, web

from services.core import convert
from services.core.events import EventRecord
from services.notifier import sse
from services.notifier.encodings import EventEncodings
from services.notifier.hub import HEARTBEAT, Heartbeat
from services.notifier.metrics import Tally

log = logging.getLogger(__name__)

# SO_LINGER on, timeout 0: close() resets the connection and frees its send buffer at once,
# instead of leaving the kernel to push it to a peer that reads nothing.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)
_write = os.write


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
    encode = frame_encoder(base_url)

    async with contextlib.aclosing(events):
        async for event in events:
            frame = heartbeat if event is None else encodings.get(event, base_url, encode)
            await write_bounded(request, response, frame, write_timeout_s)


def frame_encoder(base_url: str) -> Callable[[EventRecord], bytes]:
    def encode(event: EventRecord) -> bytes:
        return sse.event_frame(event.id, str(event.type), convert.event_to_json(event, base_url))

    return encode


def chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked HTTP/1.1 body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class DirectFrames:
    """A stream's DirectWriter (stream.replay_then_live): writes each event's frame (made once
    for all streams), or a heartbeat comment, to the connection from the hub's loop; refuses an
    item that would take the transport's buffer to its high-water mark or that finds the
    connection closed. Events not newer than `last_id` are dropped, as the stream does.

    While the transport holds none of its bytes, a frame goes straight to the socket, checked
    by nothing but the socket's own descriptor: once the transport closes the socket, that reads
    -1, so a descriptor number the kernel has given to a newer connection is never written to.
    Whether the transport's buffer is empty is known without asking it (reading the transport's
    state for each of 10,000 streams cost as much as the send() itself): nothing else writes to
    the connection while a sink is direct (the stream's task is waiting for its queue), so only
    this sink's own partial write fills the buffer, and a refusal (after which the task writes
    again) makes the next item ask."""

    __slots__ = (
        "_behind",
        "_delivered",
        "_encode",
        "_encodings",
        "_heartbeat",
        "_kind",
        "_latest",
        "_socket",
        "_transport",
        "last_id",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        encodings: EventEncodings,
        base_url: str,
        chunked: bool,
        delivered: Tally | None = None,
    ) -> None:
        self.last_id = 0
        self._delivered = delivered or Tally()
        self._transport = transport
        self._socket = transport.get_extra_info("socket")
        self._encodings = encodings
        encode = frame_encoder(base_url)
        heartbeat = sse.comment_frame("heartbeat")
        if chunked:
            self._kind = f"chunked {base_url}"
            self._encode: Callable[[EventRecord], bytes] = lambda event: chunk(encode(event))
            self._heartbeat = chunk(heartbeat)
        else:
            self._kind = base_url
            self._encode = encode
            self._heartbeat = heartbeat
        self._latest = encodings.latest(self._kind)
        # Whether the transport may hold bytes: at first, and after a refusal, the stream's
        # task has written through it.
        self._behind = True

    @classmethod
    def for_response(
        cls,
        request: web.Request,
        response: web.StreamResponse,
        encodings: EventEncodings,
        base_url: str,
        delivered: Tally | None = None,
    ) -> DirectFrames | None:
        """For a prepared response whose body is the frames as they are, or chunked; None
        when it is neither (compressed), or has no plain TCP transport."""
        transport = request.transport
        if transport is None or response.compression or not response.prepared:
            return None
        if transport.get_extra_info("sslcontext") is not None:
            return None  # DirectFrames writes to the socket itself: only plain TCP
        chunked = response.headers.get(hdrs.TRANSFER_ENCODING, "").lower() == "chunked"
        if not chunked and response.headers.get(hdrs.TRANSFER_ENCODING):
            return None
        return cls(transport, encodings, base_url, chunked, delivered)  # type: ignore[arg-type]

    def __call__(self, item: EventRecord | Heartbeat) -> bool:
        if item is HEARTBEAT:
            frame = self._heartbeat
        elif item.id <= self.last_id:  # type: ignore[union-attr]
            return True  # replayed already
        else:
            latest = self._latest  # the same event for every stream of the fan-out
            if latest.event is not item:
                latest.encoded = self._encodings.get(item, self._kind, self._encode)  # type: ignore[arg-type]
                latest.event = item  # type: ignore[assignment]
            frame = latest.encoded
        if not (self._send_asking(frame) if self._behind else self._send_now(frame)):
            self._behind = True  # the stream's task writes next
            return False
        if item is not HEARTBEAT:
            self.last_id = item.id  # type: ignore[union-attr]
            self._delivered.count += 1
        return True

    def _send_now(self, frame: bytes) -> bool:
        """Writes to the socket itself, as the transport's own write would first try to, but
        without its checks; the transport holds nothing, so nothing it holds goes after this.
        What the socket does not take goes to the transport, which sends it when it can."""
        fd = self._socket.fileno()
        if fd < 0:
            return False  # closed: the stream's task meets that and ends
        try:
            sent = _write(fd, frame)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._transport.write(frame)  # it meets the same error and closes the connection
            return True
        if sent < len(frame):
            self._transport.write(frame[sent:])
            self._behind = True
        return True

    def _send_asking(self, frame: bytes) -> bool:
        """Asks the transport: behind what it holds, straight to the socket once it is empty."""
        transport = self._transport
        if not takes_without_pausing(transport, len(frame)):
            return False
        if transport.get_write_buffer_size():
            transport.write(frame)  # behind what is buffered, in order
            return True
        self._behind = False
        return self._send_now(frame)


async def write_bounded(
    request: web.Request, response: web.StreamResponse, data: bytes, timeout_s: float
) -> None:
    """`response.write(data)`, which waits only while the client's buffers are full; when that
    lasts `timeout_s`, the connection is reset and ClientStalled raised."""
    # Cannot wait: no timer (the common case, and a timer is a cost per write).
    if takes_without_pausing(request.transport, len(data)):
        await response.write(data)
        return
    try:
        async with asyncio.timeout(timeout_s):
            await response.write(data)
    except TimeoutError:
        reset_connection(request)
        raise ClientStalled(f"the client took nothing for {timeout_s:g} s") from None


def takes_without_pausing(transport: asyncio.BaseTransport | None, size: int) -> bool:
    """Whether the transport takes `size` more bytes without pausing its writer (below its
    high-water mark even with them), so that a write returns without waiting for the client."""
    if not isinstance(transport, asyncio.WriteTransport) or transport.is_closing():
        return False
    _low, high = transport.get_write_buffer_limits()
    return transport.get_write_buffer_size() + size < high


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
