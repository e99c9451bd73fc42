"""Concurrent clients of UploadPhoto, each on a connection of its own and sending its uploads
one after another as the `thumbwire` CLI does (1 MiB chunks); the time of every call, from
its start to the answer."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from thumbwire.v1 import photos_pb2_grpc

from bench.stack_client import upload_requests
from services.cli.upload import CHUNK_BYTES
from services.core.grpc_bearer import bearer_channel


@dataclass
class Latencies:
    ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0  # from the first call's start to the last answer, summed over runs

    def add(self, other: Latencies) -> None:
        self.ms += other.ms
        self.wall_s += other.wall_s

    def percentile(self, p: float) -> float:
        """Nearest rank: the smallest sample with at least p% of them at or below it."""
        ranked = sorted(self.ms)
        return ranked[max(0, math.ceil(p / 100 * len(ranked)) - 1)]

    @property
    def per_s(self) -> float:
        return len(self.ms) / self.wall_s


async def upload_load(
    address: str, token: str, workspace: str, data: bytes, clients: int, uploads_each: int
) -> Latencies:
    """`clients` clients at once, `uploads_each` uploads each; raises on any failed call."""
    samples: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(
        *(_client(address, token, workspace, data, uploads_each, samples) for _ in range(clients))
    )
    return Latencies(samples, time.perf_counter() - started)


async def _client(
    address: str, token: str, workspace: str, data: bytes, uploads: int, samples: list[float]
) -> None:
    async with bearer_channel(address, token) as channel:
        stub = photos_pb2_grpc.PhotoServiceStub(channel)
        await channel.channel_ready()  # connecting is not part of an upload's time
        for _ in range(uploads):
            started = time.perf_counter()
            await stub.UploadPhoto(upload_requests(workspace, data, "bench-item", CHUNK_BYTES))
            samples.append((time.perf_counter() - started) * 1000)
