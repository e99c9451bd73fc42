"""`python -m bench.one CONTENDER PATH ROUNDS`: one contender on one original, alone in this
process so that its peak memory is its own; prints a JSON line."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from bench.contenders import CONTENDERS


def main(name: str, path: str, rounds: int) -> None:
    work = CONTENDERS[name]
    data = Path(path).read_bytes()
    baseline_kb = peak_rss_kb()
    work(data)  # warm up: first-call costs are not what is compared
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        work(data)
        samples.append((time.perf_counter() - started) * 1000)
    result = {"ms": statistics.median(samples), "peak_kb": peak_rss_kb(), "base_kb": baseline_kb}
    print(json.dumps(result))


def peak_rss_kb() -> int:
    """This process's peak RSS since it started (VmHWM). Not getrusage's ru_maxrss: Linux
    carries that over from the process that forked this one, however large it was."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
