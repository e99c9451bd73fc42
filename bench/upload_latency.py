"""Upload latency: UploadPhoto of a 3 MB JPEG from concurrent clients, on the whole stack run
as processes (bench.upload_stack), in four phases measured in one run:

- idle: the thumbnailers are running but their render workers are stopped (SIGSTOP), so no
  image is rendered and they use no CPU; the jobs of the uploads wait, the backlog of the next
  phases;
- saturated: a thumbnailer resumed, rendering that backlog on every core while the same
  uploads are measured again (bench.backlog_watch shows that photos were waiting throughout);
- saturated, render workers at nice 10: the same with a second thumbnailer whose render
  workers keep the normal policy at nice 10 (THUMBWIRE_RENDER_PRIORITY=10, COMPARED_PRIORITY),
  as they did before they were idle-priority work;
- sync: the synchronous baseline (bench.sync_upload), which makes the thumbnails before it
  answers, beside the upload service, with the thumbnailers' render workers stopped."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import math
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.backlog_watch import Backlog, watching
from bench.fanout_stack import free_address
from bench.photos import three_mb_jpeg
from bench.store_dir import where
from bench.upload_findings import FINDINGS
from bench.upload_load import Latencies, upload_load
from bench.upload_stack import (
    CLIENTS_PROCESS,
    MACHINE,
    S3_PROCESS,
    WORKSPACE,
    Service,
    UploadStack,
    upload_stack,
)
from services.core.auth import TokenAuthority
from services.core.config import Settings

CLIENTS = 8
ROUNDS = 12
UPLOADS_EACH = 5  # per client and round: CLIENTS x ROUNDS x UPLOADS_EACH uploads per phase
WARMUP_EACH = 2
BUSY_AFTER_S = 0.5  # from resuming a thumbnailer to measuring: its workers under way
COMPARED_PRIORITY = "10"  # the default until 2026-12-03
SERVICES = [
    Service("upload", "services.upload"),
    Service("notifier", "services.notifier"),
    Service("thumbnailer", "services.thumbnailer"),
    # The same thumbnailer with its render workers at COMPARED_PRIORITY: what the default
    # (THUMBWIRE_RENDER_PRIORITY) gives against it (each is resumed only in its own phase).
    Service(
        "thumbnailer-compared",
        "services.thumbnailer",
        own_metrics_addr=True,
        render_priority=COMPARED_PRIORITY,
    ),
]
THUMBNAILERS = ("thumbnailer", "thumbnailer-compared")
SYNC_SERVER = "sync"
SATURATED_OVER_IDLE = 1.2  # at most, p50 and p99
# Processes on the same cores that are not thumbwire's
BYSTANDERS = (CLIENTS_PROCESS, S3_PROCESS)
SYNC_OVER_ASYNC = 5.0  # at least, p50


@dataclass
class Phase:
    name: str
    thumbnailer: str
    latencies: Latencies = field(default_factory=Latencies)
    loads: list[float] = field(default_factory=list)  # 1-minute load average after each batch
    backlog: Backlog | None = None
    # CPU seconds over the phase's batches, by process and MACHINE (UploadStack.cpu_spent)
    cpu_s: collections.Counter[str] = field(default_factory=collections.Counter)

    async def batch(self, load: Load, stack: UploadStack) -> None:
        with stack.cpu_spent() as spent:
            self.latencies.add(await load(UPLOADS_EACH))
        self.loads.append(os.getloadavg()[0])
        self.cpu_s.update(spent)

    def cpu_ms_per_upload(self, name: str) -> float:
        return self.cpu_s[name] / len(self.latencies.ms) * 1000


Load = Callable[[int], Awaitable[Latencies]]


async def measure(data: bytes) -> tuple[list[Phase], int, str]:
    """The phases in rounds, one batch of each per round, so that a change in the machine's
    other load (it is shared) falls on all of them alike; the photos that failed (none
    should, the check that stopping render workers did not break an image); and where the
    object store kept its files."""
    idle = Phase("async", "idle (workers stopped)")
    saturated = {
        "thumbnailer": Phase("async", "saturated", backlog=Backlog()),
        "thumbnailer-compared": Phase(
            "async", f"saturated, render workers at nice {COMPARED_PRIORITY}", backlog=Backlog()
        ),
    }
    sync = Phase("sync baseline", "idle; renders in the call")
    async with upload_stack(SERVICES) as stack:
        upload, synchronous = await warm_up(stack, data)
        await upload(UPLOADS_EACH)  # a backlog before the first saturated batch
        for _ in range(ROUNDS):
            await idle.batch(upload, stack)
            for name, phase in saturated.items():
                stack.resume(name)
                await asyncio.sleep(BUSY_AFTER_S)
                async with watching(stack, phase.backlog, name):  # type: ignore[arg-type]
                    await phase.batch(upload, stack)
                stack.pause(name)
            await sync.batch(synchronous, stack)
        failed = await stack.photos("failed")
        store = where(stack.s3_dir)
    return [idle, *saturated.values(), sync], failed, store


async def warm_up(stack: UploadStack, data: bytes) -> tuple[Load, Load]:
    """Both servers up, their connections made and their render workers started; loaders of
    each. Returns with the thumbnailers' render workers stopped."""
    settings = dataclasses.replace(stack.settings, upload_addr=free_address())
    await stack.start(SYNC_SERVER, "bench.sync_upload", settings)
    upload = _loader(stack, stack.settings.upload_addr, data)
    synchronous = _loader(stack, settings.upload_addr, data)
    while not all(stack.render_workers(n) == stack.settings.concurrency for n in THUMBNAILERS):
        await upload(WARMUP_EACH)  # a pool starts its workers when first needed
        await _until_rendered(stack)
    for name in THUMBNAILERS:
        stack.pause(name)
    await synchronous(WARMUP_EACH)
    return upload, synchronous


def _loader(stack: UploadStack, address: str, data: bytes) -> Load:
    token = TokenAuthority(stack.settings.auth_secret or "").issue("bench", [WORKSPACE], 3600)
    return functools.partial(upload_load, address, token, WORKSPACE, data, CLIENTS)


async def _until_rendered(stack: UploadStack) -> None:
    async def unfinished() -> int:
        return await stack.photos("pending") + await stack.photos("processing")

    await _poll(unfinished, lambda n: n == 0, 120)


async def _poll(
    read: Callable[[], Awaitable[int]], done: Callable[[int], bool], timeout_s: float
) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if done(await read()):
                return
            await asyncio.sleep(0.1)


def run() -> list[str]:
    path = three_mb_jpeg()
    started = time.perf_counter()
    phases, failed, store = asyncio.run(measure(path.read_bytes()))
    size_mb = path.stat().st_size / 1e6
    return report(phases, failed, store, size_mb, time.perf_counter() - started)


def report(phases: list[Phase], failed: int, store: str, size_mb: float, run_s: float) -> list[str]:
    idle, saturated, compared, sync = phases
    return [
        f"## Upload latency: UploadPhoto of a {size_mb:.1f} MB JPEG, {CLIENTS} concurrent clients",
        "",
        *_method(run_s, failed, store),
        "",
        "| upload | thumbnailer | uploads | p50 ms | p99 ms | uploads/s | photos waiting:"
        " least / last | thumbnails made | thumbnailer CPU, cores | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *(_row(phase) for phase in phases),
        "",
        *_targets(idle.latencies, saturated.latencies, sync.latencies),
        *_priority(idle.latencies, compared.latencies),
        "",
        *_cpu(idle, sync),
        "",
        *FINDINGS,
    ]


def _method(run_s: float, failed: int, store: str) -> list[str]:
    return [
        f"The whole stack as processes on this machine's {os.cpu_count()} cores (upload,"
        " notifier, thumbnailer with one render worker per core, rclone serve s3 as the object"
        f" store, {store} (bench/store_dir.py), the shared PostgreSQL and RabbitMQ), and the"
        " clients in the bench's process,"
        f" each on a connection of its own, sending 1 MiB chunks as the CLI does. {ROUNDS}"
        " rounds, each a batch of every phase in turn (so that the machine's other load falls"
        f" on all phases alike), a batch being {UPLOADS_EACH} uploads one after another from"
        f" each client. Latency: from the call's start to its answer; p99 by nearest rank, the"
        f" {_rank_from_top(CLIENTS * ROUNDS * UPLOADS_EACH, 99)} slowest of"
        f" {CLIENTS * ROUNDS * UPLOADS_EACH}, so a few stalls from other work on the machine"
        " move it. Idle: the thumbnailer's"
        " render workers stopped with SIGSTOP, so the jobs queue up. Saturated: the same"
        " thumbnailer resumed on that backlog, its render workers at the default"
        f" THUMBWIRE_RENDER_PRIORITY ({Settings().render_priority}); photos waiting (pending,"
        " sampled every 0.25 s over the saturated batches) show it never ran dry. Render"
        f" workers at nice {COMPARED_PRIORITY}: a second thumbnailer with"
        f" THUMBWIRE_RENDER_PRIORITY={COMPARED_PRIORITY} (its workers under the normal policy,"
        " as before they were idle-priority work), resumed in its own batches instead of the"
        " first."
        " Sync baseline:"
        " `bench/sync_upload.py`, a server beside the upload service whose UploadPhoto is the"
        " same upload followed, in the same call, by the thumbnailer's own processing (claim,"
        " render in a pool of one worker process per core, three WebP objects stored, status"
        " complete with its event); it skips reading the original back from S3 and the"
        " broker's trip, so it is a little faster than the asynchronous path's whole way to"
        " thumbnails. Load avg: the machine's 1-minute load average after each batch, the"
        f" phase's mean (the machine is shared). Photos failed in the run: {failed}. Run time"
        f" of this section: {run_s:.0f} s.",
    ]


def _rank_from_top(samples: int, p: float) -> str:
    rank = samples - math.ceil(p / 100 * samples) + 1
    return f"{rank}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(rank, 'th') }"


def _row(phase: Phase) -> str:
    lat, backlog = phase.latencies, phase.backlog
    watched = (
        f"{backlog.least_waiting} / {backlog.waiting[-1]} | {backlog.completed}"
        f" | {backlog.cores:.2f}"
        if backlog and backlog.waiting
        else "- | - | 0.00"
    )
    return (
        f"| {phase.name} | {phase.thumbnailer} | {len(lat.ms)} | {lat.percentile(50):.0f}"
        f" | {lat.percentile(99):.0f} | {lat.per_s:.1f} | {watched}"
        f" | {statistics.mean(phase.loads):.2f} |"
    )


def _targets(idle: Latencies, saturated: Latencies, sync: Latencies) -> list[str]:
    p50 = saturated.percentile(50) / idle.percentile(50)
    p99 = saturated.percentile(99) / idle.percentile(99)
    faster = sync.percentile(50) / idle.percentile(50)
    faster_busy = sync.percentile(50) / saturated.percentile(50)
    calm = max(p50, p99) <= SATURATED_OVER_IDLE
    return [
        "Targets:",
        "",
        f"- saturated against idle: p50 {p50:.2f}x, p99 {p99:.2f}x"
        f" (target at most {SATURATED_OVER_IDLE}x): {_verdict(calm)}",
        f"- sync baseline against async at p50: async {faster:.1f}x faster idle,"
        f" {faster_busy:.1f}x saturated (target at least {SYNC_OVER_ASYNC:.0f}x):"
        f" {_verdict(faster >= SYNC_OVER_ASYNC)}",
    ]


def _priority(idle: Latencies, compared: Latencies) -> list[str]:
    p50 = compared.percentile(50) / idle.percentile(50)
    p99 = compared.percentile(99) / idle.percentile(99)
    return [
        f"- saturated by render workers at nice {COMPARED_PRIORITY} (the default before)"
        " against idle:"
        f" p50 {p50:.2f}x, p99 {p99:.2f}x",
    ]


def _cpu(idle: Phase, sync: Phase) -> list[str]:
    """Where each upload's CPU went, asynchronous (idle) against synchronous: with the clients
    keeping both cores busy, the ratio of the p50s follows the machine's ratio."""
    services = [n for n in idle.cpu_s if n not in (*BYSTANDERS, MACHINE)]  # in starting order

    def own(phase: Phase) -> float:
        return sum(phase.cpu_ms_per_upload(name) for name in services)

    def rest(phase: Phase) -> float:
        bystanders = sum(phase.cpu_ms_per_upload(name) for name in BYSTANDERS)
        return phase.cpu_ms_per_upload(MACHINE) - own(phase) - bystanders

    def measured(name: str) -> tuple[str, float, float]:
        return name, idle.cpu_ms_per_upload(name), sync.cpu_ms_per_upload(name)

    rows = [
        *map(measured, services),
        ("**thumbwire's services**", own(idle), own(sync)),
        *map(measured, BYSTANDERS),
        ("the rest: PostgreSQL, RabbitMQ, the kernel, other work", rest(idle), rest(sync)),
        (f"**{MACHINE}**", *measured(MACHINE)[1:]),
    ]
    machine = sync.cpu_ms_per_upload(MACHINE) / idle.cpu_ms_per_upload(MACHINE)
    bystanders_share = 1 - own(idle) / idle.cpu_ms_per_upload(MACHINE)
    return [
        "CPU time per upload, by process, in the asynchronous (idle) and synchronous batches"
        f" (read from /proc; `{SYNC_SERVER}` is the baseline's server and its render workers, a"
        " thumbnailer's row its render workers included):",
        "",
        "| process | async, ms | sync baseline, ms |",
        "|---|---|---|",
        *(f"| {name} | {async_ms:.1f} | {sync_ms:.1f} |" for name, async_ms, sync_ms in rows),
        "",
        f"Sync against async in CPU per upload: {machine:.1f}x for the whole machine,"
        f" {own(sync) / own(idle):.1f}x for thumbwire's services alone. The clients, the"
        f" stand-in object store and the rest take {bystanders_share:.0%} of an asynchronous"
        f" upload's CPU here, on the same {os.cpu_count()} cores; in a deployment the clients"
        " and the object store run elsewhere.",
    ]


def _verdict(met: bool) -> str:
    return "met" if met else "not met"
