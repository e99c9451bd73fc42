"""`python -m bench.fanout_stamped_clients HOST PORT PATH COUNT`: COUNT SSE clients in this
process that stand for browsers on other machines.

Each connection asks the kernel to stamp the time its data arrives (SO_TIMESTAMPNS), and
reads only when the bench says so, once an event's fan-out is over. So on a machine whose
cores the clients share with the notifier they measure, their CPU is not taken from the
notifier while it fans out, and the latency measured ends when the frame reached the client's
socket, not when a busy client process got round to reading it. The kernel's receive work
(TCP on loopback) is still done in the notifier's send() and counted against it, as it would
not be with a network between them.

A read that finds several frames has one stamp, its last segment's: every frame in it gets
that stamp, which can only make a latency longer.

Talks to bench.fanout over stdin and stdout:

    -> "connected N"   once every connection has its response headers (N failed otherwise)
    <- "drain"         read every connection once: -> "drained F", F frames read
    <- "report"        -> one JSON line {"received": {event id: [arrival times]},
                          "ended": connections closed}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import sys
from collections import defaultdict

from services.core.limits import raise_open_files_limit

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; the module lacks the name
STAMP_SPACE = socket.CMSG_SPACE(struct.calcsize("qq"))
OPENING_AT_ONCE = 24  # the gateway's listen backlog is 128; every client process opens at once
READ_SIZE = 65536


class StampedClient:
    """One SSE connection, read on demand; frames are split on blank lines."""

    def __init__(self, sock: socket.socket, pending: bytes) -> None:
        self.sock = sock
        self._pending = pending

    def drain(self, received: dict[int, list[float]]) -> tuple[int, bool]:
        """Reads all that has arrived; (frames read, still open)."""
        frames = 0
        while True:
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(READ_SIZE, STAMP_SPACE)
            except BlockingIOError:
                return frames, True
            except OSError:
                return frames, False
            if not data:
                return frames, False
            arrived = arrival_time(ancillary)
            parts = (self._pending + data).split(b"\n\n")
            self._pending = parts.pop()
            for frame in parts:
                if frame.startswith(b"id: "):
                    received[int(frame[4 : frame.index(b"\n")])].append(arrived)
                    frames += 1


def arrival_time(ancillary: list[tuple[int, int, bytes]]) -> float:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", data[: struct.calcsize("qq")])
            return seconds + nanoseconds / 1e9
    raise RuntimeError("a read without its arrival stamp: SO_TIMESTAMPNS not in effect")


async def open_one(host: str, port: int, request: bytes, gate: asyncio.Semaphore) -> StampedClient:
    """Connects, sends the request, and reads up to the end of the response headers."""
    loop = asyncio.get_running_loop()
    async with gate:
        sock = socket.socket()
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (host, port))
            await loop.sock_sendall(sock, request)
            head = b""
            async with asyncio.timeout(60):
                while b"\r\n\r\n" not in head:
                    data = await loop.sock_recv(sock, READ_SIZE)
                    if not data:
                        raise ConnectionError("closed before the response")
                    head += data
        except BaseException:
            sock.close()
            raise
    status, rest = head.split(b"\r\n", 1)[0], head.split(b"\r\n\r\n", 1)[1]
    if b" 200 " not in status + b" ":
        sock.close()
        raise ConnectionError(f"refused: {status.decode(errors='replace')}")
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    return StampedClient(sock, rest)


async def open_all(host: str, port: int, path: str, count: int) -> list[StampedClient | None]:
    # HTTP/1.0: the body comes unchunked, so each event is one frame as the gateway wrote it.
    request = f"GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    opened = await asyncio.gather(
        *(open_one(host, port, request, gate) for _ in range(count)), return_exceptions=True
    )
    return [o if isinstance(o, StampedClient) else None for o in opened]


def main(host: str, port: int, path: str, count: int) -> None:
    raise_open_files_limit()
    opened = asyncio.run(open_all(host, port, path, count))
    clients = [c for c in opened if c is not None]
    print(f"connected {count - len(clients)}", flush=True)
    received: dict[int, list[float]] = defaultdict(list)
    ended = 0
    for command in sys.stdin:
        if command.strip() == "drain":
            frames = 0
            still_open = []
            for client in clients:
                read, is_open = client.drain(received)
                frames += read
                if is_open:
                    still_open.append(client)
                else:
                    ended += 1
                    client.sock.close()
            clients = still_open
            print(f"drained {frames}", flush=True)
        elif command.strip() == "report":
            print(json.dumps({"received": received, "ended": ended}), flush=True)
            break
    for client in clients:
        with contextlib.suppress(OSError):
            reset_on_close(client.sock)
            client.sock.close()


def reset_on_close(sock: socket.socket) -> None:
    """Closing sends a reset, which leaves no TIME_WAIT entry: 20,000 of them from one
    scenario would lengthen the kernel's connection lookups in the next."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
