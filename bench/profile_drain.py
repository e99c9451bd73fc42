"""`python -m bench.profile_drain`: the pipeline benchmark's drain (bench.pipeline) with
py-spy sampling the thumbnailer and its image workers throughout; prints where each process
spent its samples (top frames by own time) and keeps the raw stacks in var/bench/.

Not a section of docs/benchmarks.md: a profiler's sampling slows what it watches, so its
figures say where the time goes, not how fast the pipeline is."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.photos import CACHE, originals
from bench.pipeline import drain, warm_up
from bench.real_stack import WORKSPACE, RealStack, real_stack
from bench.stack_client import StackClient

TOP = 12
RAW = CACHE / "pipeline-drain.pyspy.txt"


def attach(stack: RealStack, out: Path) -> subprocess.Popen[bytes]:
    """py-spy on the thumbnailer and its children, without pausing them (--nonblocking: the
    thumbnailer is frozen when this is called)."""
    command = [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw"]
    command += ["--subprocesses", "--nonblocking", "--rate", "200", "--output", str(out)]
    command += ["--pid", str(stack.processes["thumbnailer"].pid)]
    log = out.with_suffix(".log").open("wb")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


async def profile(out: Path) -> None:
    data = originals()[0].path.read_bytes()
    workers = os.cpu_count() or 1
    spies: list[subprocess.Popen[bytes]] = []
    async with real_stack(thumbnailer_concurrency=workers) as stack:
        client = StackClient(
            stack.settings.upload_addr, stack.settings.notifier_addr, stack.token(), WORKSPACE
        )

        def start_spy(running: RealStack) -> None:
            spies.append(attach(running, out))

        try:
            await client.subscribe()
            await warm_up(stack, client, data)
            result = await drain(stack, client, data, workers, on_thaw=start_spy)
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
                spy.wait(30)
            await client.close()
    print(f"drain (slowed by the profiler): {result.photos_per_s:.1f} photos/s")


def summary(raw: Path) -> list[str]:
    """Samples by process, then each process's top frames by own samples."""
    by_process: dict[str, Counter[str]] = {}
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        process = "image worker" if "thumbnailer.worker" in stack else "thumbnailer main"
        by_process.setdefault(process, Counter())[frames[-1]] += int(count)
    lines = []
    for process, frames in by_process.items():
        total = sum(frames.values())
        lines.append(f"{process}: {total} samples")
        for frame, count in frames.most_common(TOP):
            lines.append(f"  {count / total:6.1%}  {frame}")
    return lines


def main() -> None:
    RAW.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(profile(RAW))
    print("\n".join(summary(RAW)))
    print(f"raw stacks: {RAW}")


if __name__ == "__main__":
    main()
