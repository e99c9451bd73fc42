"""The SSE client processes of a fan-out scenario, in one of two kinds:

- live (bench.fanout_clients): each client reads its frames as they come, on the same cores
  as the notifier, and stamps them when its process reads them;
- stamped (bench.fanout_stamped_clients): clients that stand for browsers on other machines:
  the kernel stamps each frame's arrival, and they read only between events (`drain`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

LIVE = "live"
STAMPED = "stamped"
MODULES = {LIVE: "bench.fanout_clients", STAMPED: "bench.fanout_stamped_clients"}
DRAIN_EVERY_S = 0.5  # stamped clients, while waiting for a burst's last deliveries


@dataclass
class Deliveries:
    """Receive times by event id, from every client."""

    times: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    ended: int = 0

    def add(self, received: dict[str, list[float]]) -> None:
        for event_id, times in received.items():
            self.times[int(event_id)].extend(times)

    def latencies_ms(self, committed: dict[int, float]) -> list[float]:
        return [(t - at) * 1000 for event_id, at in committed.items() for t in self.times[event_id]]

    def count(self, event_ids: list[int]) -> int:
        return sum(len(self.times[i]) for i in event_ids)

    def last(self, event_ids: list[int]) -> float:
        return max(max(self.times[i], default=0.0) for i in event_ids)


class ClientProcesses:
    """`count` SSE connections to `url_path`, split evenly over `processes` processes."""

    def __init__(self, kind: str, host: str, port: str, url_path: str, count: int, processes: int):
        self.kind = kind
        shares = [count // processes + (i < count % processes) for i in range(processes)]
        command = [sys.executable, "-m", MODULES[kind], host, port, url_path]
        self.processes = [
            subprocess.Popen(
                [*command, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            for n in shares
        ]

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    async def connected(self) -> int:
        """Waits for every process to have its connections open; how many failed."""
        lines = await asyncio.gather(*(self._read(p) for p in self.processes))
        return sum(int(line.split()[1]) for line in lines)

    async def drain(self) -> int:
        """Stamped clients read what has arrived; the frames read (0 for live clients, which
        read all the time)."""
        if self.kind != STAMPED:
            return 0
        self._send_all("drain")
        lines = await asyncio.gather(*(self._read(p) for p in self.processes))
        return sum(int(line.split()[1]) for line in lines)

    async def collect(self, last_id: int, expected: int, wait_s: float) -> Deliveries:
        """Every client's deliveries, once each has `last_id` on every connection (live), or
        `expected` frames have been read since the last drain (stamped), or `wait_s` has passed:
        what has not arrived by then counts as missing."""
        if self.kind == STAMPED:
            deadline = time.monotonic() + wait_s
            read = 0
            while read < expected and time.monotonic() < deadline:
                await asyncio.sleep(DRAIN_EVERY_S)
                read += await self.drain()
            self._send_all("report")
        else:
            self._send_all(f"report {last_id} {wait_s}")
        deliveries = Deliveries()
        for process in self.processes:
            report = json.loads(await self._read(process))
            deliveries.add(report["received"])
            deliveries.ended += report["ended"]
            await asyncio.to_thread(process.wait, 60)
        return deliveries

    def _send_all(self, line: str) -> None:
        for process in self.processes:
            process.stdin.write(line + "\n")  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]

    @staticmethod
    async def _read(process: subprocess.Popen[str]) -> str:
        return await asyncio.to_thread(process.stdout.readline)  # type: ignore[union-attr]
