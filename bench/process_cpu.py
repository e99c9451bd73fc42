"""CPU time of the stack's processes, read from /proc, to tell where a run's cores went."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from services.core.proc_stat import cpu_s


def children(pid: int) -> list[int]:
    """The direct children of `pid` (the thumbnailer's image workers)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def cpu_by_name(pids: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far, summed over each name's processes (those still alive)."""
    totals = {}
    for name, group in pids.items():
        total = 0.0
        for pid in group:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += cpu_s(pid)
        totals[name] = total
    return totals


def machine_busy_s() -> float:
    """Every core's non-idle time since boot, in seconds (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
