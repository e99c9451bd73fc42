"""`python -m bench.upload_profile [idle|saturated|sync|cpu]`: what limits the upload benchmark's
phase. Runs the phase as bench.upload_latency does, with py-spy sampling the upload service (or
the sync baseline) meanwhile, and prints the CPU seconds per upload of each process of the
stack and the profile's top frames (self and inclusive). Not part of `make bench`: sampling
slows the process it samples, so its figures are for finding the limit, not for reporting
latency.

`cpu` samples nothing: it alternates asynchronous and synchronous batches (CPU_ROUNDS of each)
and prints the machine's and each process's CPU time per upload, which is what the ratio of
their p50s follows while eight clients keep both cores busy."""

from __future__ import annotations

import asyncio
import collections
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.photos import three_mb_jpeg
from bench.upload_latency import BUSY_AFTER_S, SERVICES, warm_up
from bench.upload_stack import MACHINE, UploadStack, upload_stack

TOP = 25
PROFILED_EACH = 30  # uploads per client
CPU_ROUNDS = 2
CPU_EACH = {"async": 15, "sync": 5}  # uploads per client and batch


async def profile(phase: str) -> None:
    data = three_mb_jpeg().read_bytes()
    async with upload_stack(SERVICES) as stack:
        upload, synchronous = await warm_up(stack, data)
        if phase == "cpu":
            for _ in range(CPU_ROUNDS):
                for name, load in (("async", upload), ("sync", synchronous)):
                    await _counted(stack, name, lambda: load(CPU_EACH[name]))  # noqa: B023
        elif phase == "idle":
            await _sampled(stack, "upload", lambda: upload(PROFILED_EACH))
        elif phase == "saturated":
            await upload(PROFILED_EACH)  # the backlog
            stack.resume("thumbnailer")
            await asyncio.sleep(BUSY_AFTER_S)
            await _sampled(stack, "upload", lambda: upload(PROFILED_EACH))
        else:
            await _sampled(stack, "sync", lambda: synchronous(PROFILED_EACH))


async def _sampled(stack: UploadStack, target: str, work) -> None:  # type: ignore[no-untyped-def]
    out = Path(tempfile.mkdtemp()) / "profile.txt"
    spy = _py_spy(stack.processes[target].pid, out)
    await asyncio.sleep(1.0)  # py-spy attaches
    try:
        await _counted(stack, target, work)
    finally:
        spy.send_signal(signal.SIGINT)
        await asyncio.to_thread(spy.wait, 30)
    _print_top(out.read_text())


async def _counted(stack: UploadStack, label: str, work) -> None:  # type: ignore[no-untyped-def]
    """Runs `work` and prints the CPU time per upload that it cost each process."""
    with stack.cpu_spent() as spent:
        latencies = await work()
    uploads = len(latencies.ms)
    machine = spent.pop(MACHINE)
    print(
        f"{label}: {uploads} uploads, p50 {latencies.percentile(50):.0f} ms,"
        f" {latencies.per_s:.1f}/s; machine busy {machine / uploads * 1000:.1f} ms CPU per upload"
    )
    for name, seconds in spent.items():
        print(f"  {name}: {seconds / uploads * 1000:.1f} ms per upload")


def _py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` 200 times a second, without pausing it, until SIGINT."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
         "--rate", "200", "--format", "raw", "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def _print_top(raw: str) -> None:
    """py-spy's raw format: one line per distinct stack, "frame;frame;... count"."""
    own: collections.Counter[str] = collections.Counter()
    within: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            within[frame] += int(count)
    for title, counter in (("self", own), ("inclusive", within)):
        print(f"top frames, {title} (% of {total} samples):")
        for frame, count in counter.most_common(TOP):
            print(f"  {100 * count / total:5.1f}%  {frame}")


if __name__ == "__main__":
    asyncio.run(profile(sys.argv[1] if len(sys.argv) > 1 else "idle"))
