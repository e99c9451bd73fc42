"""`python -m bench.fanout_clients HOST PORT PATH COUNT`: COUNT SSE clients in this process.

A bare asyncio protocol per connection speaking HTTP/1.0, not an HTTP client library: on 2
cores the clients share the machine with the notifier they measure, so each costs as little as
it can (a split on blank lines and an int() per event). Talks to bench.fanout over stdin and stdout:

    -> "connected N"   once every connection has its response headers (N failed otherwise)
    <- "report ID S"   the bench has published every event, ID the last: report once every
                       connection has it, or after S seconds
    -> one JSON line   {"received": {event id: [receive times]}, "ended": connections closed}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import defaultdict

from bench.fanout_stamped_clients import reset_on_close
from services.core.limits import raise_open_files_limit

# Connections being opened at once: the gateway's listen backlog is 128, and every client
# process opens its share at the same time.
OPENING_AT_ONCE = 24


class Deliveries:
    """Receive times by event id, of every connection of this process; `done` is set once
    `awaited` has reached `connections` of them."""

    def __init__(self) -> None:
        self.received: dict[int, list[float]] = defaultdict(list)
        self.ended = 0
        self.done = asyncio.Event()
        self.awaited = (0, 0)  # (event id, connections)

    def add(self, event_id: int, at: float) -> None:
        times = self.received[event_id]
        times.append(at)
        if (event_id, len(times)) == self.awaited:
            self.done.set()

    async def until_all_have(self, event_id: int, connections: int, wait_s: float) -> None:
        """Until every connection has the event (each gets events in order), or `wait_s`."""
        self.awaited = (event_id, connections)
        if len(self.received[event_id]) >= connections:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.done.wait(), wait_s)


class SseClient(asyncio.Protocol):
    """Records the wall-clock time at which each event id arrives."""

    def __init__(self, deliveries: Deliveries) -> None:
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._deliveries = deliveries
        self._pending = b""
        self._in_body = False

    def data_received(self, data: bytes) -> None:
        now = time.time()
        frames = (self._pending + data).split(b"\n\n")
        self._pending = frames.pop()
        for frame in frames:
            if frame.startswith(b"id: "):
                self._deliveries.add(int(frame[4 : frame.index(b"\n")]), now)
            elif not self._in_body and frame.startswith(b"HTTP/1.0 200"):
                self._in_body = True
        if self._in_body and not self.ready.done():
            self.ready.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deliveries.ended += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before the response"))


async def open_one(
    host: str, port: int, request: bytes, client: SseClient, gate: asyncio.Semaphore
) -> asyncio.Transport:
    async with gate:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(lambda: client, host, port)
        transport.write(request)
        await asyncio.wait_for(client.ready, 60)
        return transport


async def main(host: str, port: int, path: str, count: int) -> None:
    raise_open_files_limit()
    deliveries = Deliveries()
    # HTTP/1.0: the body comes unchunked, so each event is one frame as the gateway wrote it.
    request = f"GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode()
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    clients = [SseClient(deliveries) for _ in range(count)]
    opened = await asyncio.gather(
        *(open_one(host, port, request, c, gate) for c in clients), return_exceptions=True
    )
    failed = sum(isinstance(o, BaseException) for o in opened)
    print(f"connected {failed}", flush=True)
    loop = asyncio.get_running_loop()
    last_id, wait_s = (await loop.run_in_executor(None, sys.stdin.readline)).split()[1:]
    await deliveries.until_all_have(int(last_id), count - failed, float(wait_s))
    print(json.dumps({"received": deliveries.received, "ended": deliveries.ended}), flush=True)
    for transport in opened:
        if isinstance(transport, asyncio.Transport):
            reset_on_close(transport.get_extra_info("socket"))
            transport.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
