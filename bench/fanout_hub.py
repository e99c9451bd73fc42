"""The fan-out's own cost, without the network stack around it: Hub.publish to K caught-up SSE
sinks (DirectFrames on real asyncio transports over loopback TCP), against a bare loop of
os.write() over the same K sockets in the same run, the least any Python fan-out could cost.

The peers are K sockets in a child process that reads them between events, so their reading
takes no CPU from the fan-out. A third row writes the same bare loop in a shuffled order: what
the hub paid while it kept its subscriptions in a set (services.notifier.hub)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from bench.stats import percentile
from services.core.events import EventRecord
from services.core.retention import stream_reset
from services.notifier.hub import Hub
from services.notifier.sse_stream import DirectFrames, frame_encoder

WORKSPACE = "bench"
EVENTS = 15
PACE_S = 0.3  # between events: the peers read meanwhile
BACKLOG = 4096  # the peers connect all at once


@dataclass
class Timing:
    name: str
    us_per_delivery: list[float]  # one per event

    @property
    def median(self) -> float:
        return percentile(self.us_per_delivery, 50)


def measure(count: int) -> list[Timing]:
    """Per-delivery microseconds of the three ways, each over EVENTS events to `count` sockets."""
    with listening() as server, reading_peers(server, count) as connect:
        return asyncio.run(_measure(server, count, connect))


async def _measure(server: socket.socket, count: int, connect: Callable[[], None]) -> list[Timing]:
    loop = asyncio.get_running_loop()
    transports: list[asyncio.Transport] = []
    all_accepted = asyncio.Event()

    class Accepted(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transports.append(transport)  # type: ignore[arg-type]
            if len(transports) == count:
                all_accepted.set()

    listener = await loop.create_server(Accepted, sock=server, backlog=BACKLOG)
    connect()  # now that they are accepted as they come, not retried past a full backlog
    try:
        async with asyncio.timeout(60):
            await all_accepted.wait()
        hub = Hub()
        for transport in transports:
            hub.subscribe(WORKSPACE).go_direct(
                DirectFrames(transport, hub.encodings, "http://bench", chunked=False)
            )
        in_order = [t.get_extra_info("socket").fileno() for t in transports]
        shuffled = random.sample(in_order, len(in_order))
        frame = frame_encoder("http://bench")(event(0))  # what each sink writes
        ways: dict[str, Callable[[EventRecord], None]] = {
            "bare os.write loop, sockets in the order they were made": lambda _e: write_all(
                in_order, frame
            ),
            "bare os.write loop, sockets shuffled": lambda _e: write_all(shuffled, frame),
            "Hub.publish to DirectFrames (the notifier's fan-out)": hub.publish,
        }
        timings = {name: Timing(name, []) for name in ways}
        for n in range(1, EVENTS + 1):
            for name, way in ways.items():  # interleaved: the machine's load falls on all alike
                started = time.perf_counter()
                way(event(n))
                timings[name].us_per_delivery.append((time.perf_counter() - started) * 1e6 / count)
                await asyncio.sleep(PACE_S)
        return list(timings.values())
    finally:
        for transport in transports:
            transport.abort()
        listener.close()


def write_all(fds: list[int], frame: bytes) -> None:
    write = os.write
    for fd in fds:
        write(fd, frame)


def event(event_id: int) -> EventRecord:
    """An event of the workspace; its kind does not matter to the writes timed here."""
    return stream_reset(WORKSPACE, event_id)


@contextlib.contextmanager
def listening() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(BACKLOG)
    with server:
        yield server


@contextlib.contextmanager
def reading_peers(server: socket.socket, count: int) -> Iterator[Callable[[], None]]:
    """A child process that, once the call it yields is made, opens `count` connections to
    `server` and reads each of them every PACE_S / 3."""
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.read(go_read, 1)
            _read_for_ever(server.getsockname(), count)
        finally:
            os._exit(0)
    os.close(go_read)
    try:
        yield lambda: os.write(go_write, b"x") and None
    finally:
        os.close(go_write)
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def _read_for_ever(address: tuple[str, int], count: int) -> None:
    peers = [socket.create_connection(address) for _ in range(count)]
    for peer in peers:
        peer.setblocking(False)
    while True:
        time.sleep(PACE_S / 3)
        for peer in peers:
            with contextlib.suppress(BlockingIOError):
                while peer.recv(65536):
                    pass


def report(count: int) -> list[str]:
    timings = measure(count)
    bare = timings[0].median
    lines = [
        f"The fan-out alone (`bench/fanout_hub.py`): {count:,} caught-up SSE sinks on real"
        f" loopback connections in this process, {EVENTS} events, the three ways interleaved;"
        " microseconds per delivery, median of the events, and against the bare loop in order:",
        "",
        "| way | us per delivery | against the bare loop |",
        "|---|---|---|",
    ]
    for timing in timings:
        lines.append(f"| {timing.name} | {timing.median:.2f} | {timing.median / bare:.2f}x |")
    return lines
