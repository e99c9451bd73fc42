"""Real sockets for tests of the notifier's writes: an asyncio transport on one end of a
socket pair, and the other end, read only when the test says."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def connected_transport(high: int) -> AsyncIterator[tuple[asyncio.Transport, socket.socket]]:
    """A real asyncio transport on one end of a socket pair with small kernel buffers, and the
    other end, which the test reads when it wants to (it is never read otherwise)."""
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    transport.set_write_buffer_limits(high=high)
    try:
        yield transport, theirs
    finally:
        transport.abort()
        theirs.close()


def read_all(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk_ := sock.recv(65536):
            data += chunk_
    return data
