"""Upload-to-ready latency at a light load, and what it is made of.

The real stack (bench.real_stack) gets one 12 MP JPEG at a time: each upload waits for the
previous photo's photo.thumbnail_ready at a gRPC subscriber, then a pause. Each photo's time
is taken apart from three clocks of the same machine:

- the client's: when the upload started and returned, when the ready event arrived;
- the event log's: when the photo.uploaded row was written (in the upload's statement);
- the thumbnailer's "thumbnails ready" log line (services/thumbnailer/stages.py): when the
  job reached it, each stage's duration, and when the ready change committed.

The stages follow one another, so they add up to "committed -> ready event" exactly: queueing
(upload commit -> job received: the upload's outbox relay, RabbitMQ, the consumer), claim
(the processing change and its event), fetch (the original from S3), the worker's decode,
each size's resample and WebP encode, the ThumbHash, the pipe to and from the worker, the
three puts, the ready change and its event, and delivery (ready commit -> client: the outbox
relay, RabbitMQ, the notifier, its gRPC stream)."""

from __future__ import annotations

import asyncio
import os
import statistics
from dataclasses import dataclass

import asyncpg

from bench.photos import originals
from bench.real_stack import WORKSPACE, real_stack
from bench.stack_client import StackClient
from bench.stage_log import stage_timings
from bench.stats import percentile

PHOTOS = 40
WARM_UP = 3
PAUSE_S = 0.3
WORKER_OWN = ("decode", "large", "medium", "small", "placeholder")
# The same benchmark before each round of fixes (docs/benchmarks.md, "Pipeline throughput"):
# kept as measured. Newest first.
BEFORE = [
    "Before a status change and its event were one statement (commit 286e912; three runs of"
    " each tree alternated, 2026-12-02 19:37-19:42 UTC, load average 0.4-1.0): claim mean"
    " 3.4, 3.5 and 2.8 ms before, 1.9, 2.0 and 2.3 after; commit mean 2.8, 3.0 and 2.5"
    " before, 2.4, 2.3 and 2.2 after. (The job's queueing rose from 5.0 to 6.7 ms until the"
    " job's outbox row was written before the event's again: 5.0 after.)",
    "",
    "Before the relay, shared-memory, small-PUT, pool and rclone fixes (commit 820aded,"
    " 2026-12-02 07:31 UTC, load average 0.8): upload started -> ready event p50 137.6 ms,"
    " mean 138.6; upload call mean 34.3; queueing 5.7, claim 3.2, fetch 5.6, to and from"
    " the worker 3.5, store 4.9, commit 3.0, delivery 4.4 (means); everything besides the"
    " worker's own work 30 ms.",
    "",
    "Before the S3 server and pipe fixes (commit 44ce895, 2026-12-02 07:16 UTC, load"
    " average 1.4; the run with them at 07:18 UTC, load average 0.5, in brackets): upload"
    " started -> ready event p50 148.3 ms (130.3), mean 146.4 (133.8); upload call mean 37.0"
    " (33.7); fetch the original mean 15.0 (5.2), the S3 server no longer hashing the object"
    " it reads; to and from the worker mean 4.3 (3.4); everything besides the worker's own"
    " work 41 ms (30). The worker's own work did not change (72 and 74 ms).",
]


@dataclass(frozen=True)
class Photo:
    started: float
    returned: float
    committed: float  # the photo.uploaded event's time
    ready: float
    stages: dict[str, float]

    def parts(self) -> dict[str, float]:
        """Seconds of each part of committed -> ready event, in order."""
        s = self.stages
        worker = sum(s[k] for k in WORKER_OWN)
        return {
            "queueing (upload commit -> job received)": s["received"] - self.committed,
            "claim (processing change and its event)": s["claim"],
            "fetch the original (S3 GET)": s["fetch"],
            "decode (worker)": s["decode"],
            "large: resample, sRGB, encode (worker)": s["large"],
            "medium: resample, encode (worker)": s["medium"],
            "small: resample, encode (worker)": s["small"],
            "placeholder: ThumbHash (worker)": s["placeholder"],
            "to and from the worker (shared memory, pipe, pickle)": s["render"] - worker,
            "store three thumbnails (S3 PUTs)": s["store"],
            "commit (ready change and its event)": s["commit"],
            "delivery (ready commit -> client)": self.ready - s["committed"],
        }


async def measure(data: bytes) -> tuple[list[Photo], float]:
    """The photos, and the 1-minute load average at the end."""
    workers = os.cpu_count() or 1
    async with real_stack(thumbnailer_concurrency=workers) as stack:
        client = StackClient(
            stack.settings.upload_addr, stack.settings.notifier_addr, stack.token(), WORKSPACE
        )
        try:
            await client.subscribe()
            uploads = []
            for index in range(WARM_UP + PHOTOS):
                upload = await client.upload(data)
                await client.ready(upload.photo_id)
                if index >= WARM_UP:
                    uploads.append(upload)
                await asyncio.sleep(PAUSE_S)
        finally:
            await client.close()
        committed = await _uploaded_times(stack.settings.database_url)
        stages = stage_timings(stack.log_path("thumbnailer"))
        load = os.getloadavg()[0]
    photos = [
        Photo(
            u.started,
            u.returned,
            committed[u.photo_id],
            client.ready_at[u.photo_id],
            stages[u.photo_id],
        )
        for u in uploads
    ]
    return photos, load


async def _uploaded_times(database_url: str) -> dict[str, float]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT photo_id, extract(epoch FROM occurred_at)::float8 AS at FROM events"
            " WHERE type = 'photo.uploaded'"
        )
    finally:
        await conn.close()
    return {str(row["photo_id"]): row["at"] for row in rows}


def _row(name: str, seconds: list[float], total_mean_ms: float | None = None) -> str:
    ms = [s * 1000 for s in seconds]
    mean = statistics.fmean(ms)
    cells = [f"{percentile(ms, 50):.1f}", f"{percentile(ms, 99):.1f}", f"{mean:.1f}"]
    if total_mean_ms:
        cells.append(f"{mean / total_mean_ms:.0%}")
    return f"| {name} | {' | '.join(cells)} |"


def run() -> list[str]:
    data = originals()[0].path.read_bytes()
    photos, load = asyncio.run(measure(data))
    whole = [p.ready - p.started for p in photos]
    after_commit = [p.ready - p.committed for p in photos]
    parts = [p.parts() for p in photos]
    total_mean = statistics.fmean(after_commit) * 1000
    return [
        "## Upload-to-ready latency at a light load (12 MP JPEG)",
        "",
        f"{PHOTOS} photos uploaded one at a time (after {WARM_UP} to warm up), each once the"
        f" previous one's ready event had arrived, plus {PAUSE_S} s; the thumbnailer has"
        f" {os.cpu_count() or 1} image workers. p99 of {PHOTOS} samples is close to their"
        f" maximum. Load average (1 min) at the end: {load:.1f}. Reproduce: `make bench` or"
        " `python -m bench ready_latency` (on a shared machine under"
        " `flock /tmp/thumbwire-cpu.lock`).",
        "",
        "| | p50 ms | p99 ms | mean ms |",
        "|---|---|---|---|",
        _row(
            "upload call (3.5 MB streamed, stored, committed)",
            [p.returned - p.started for p in photos],
        ),
        _row("**upload started -> ready event at the client**", whole),
        _row("upload committed -> ready event at the client", after_commit),
        "",
        'What "upload committed -> ready event" is made of (the parts add up to it; see'
        " bench/ready_latency.py for where each is measured):",
        "",
        "| part | p50 ms | p99 ms | mean ms | share of the mean |",
        "|---|---|---|---|---|",
        *(_row(name, [p[name] for p in parts], total_mean) for name in parts[0]),
        "",
        _what_limits(parts, total_mean),
        "",
        *BEFORE,
    ]


def _what_limits(parts: list[dict[str, float]], total_mean_ms: float) -> str:
    """The worker's own share of the mean, and what the rest of the pipeline adds."""
    own = statistics.fmean(sum(p[k] for k in p if k.endswith("(worker)")) for p in parts) * 1000
    largest = max(
        (k for k in parts[0] if not k.endswith("(worker)")),
        key=lambda k: statistics.fmean(p[k] for p in parts),
    )
    return (
        f"What limits it: the image worker's own work (decode, sizes, ThumbHash) is"
        f" {own:.0f} ms, {own / total_mean_ms:.0%} of the mean; everything else the pipeline"
        f" does adds {total_mean_ms - own:.0f} ms, the largest part being {largest}. At this"
        " load one photo uses one worker, so two jobs per worker (the throughput fix) does not"
        " change it."
    )
