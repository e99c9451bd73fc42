"""A process's CPU time, read from /proc (Linux): what the render pool's time limit counts, and
what the benchmarks add up per process."""

from __future__ import annotations

import os
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """The process's CPU time so far, user and system, in seconds. Raises OSError (such as
    FileNotFoundError) once the process is gone."""
    fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def scheduled_s(pid: int) -> float | None:
    """How long the process's main thread has been on a CPU or waiting in a run queue for one,
    in seconds (/proc/PID/schedstat); for the rest of its life it slept or was stopped. None
    where the kernel keeps no such count; OSError once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/schedstat").read_text()
    except FileNotFoundError:
        if Path(f"/proc/{pid}").exists():
            return None  # a kernel without CONFIG_SCHED_INFO
        raise
    on_cpu_ns, waiting_ns = text.split()[:2]
    return (int(on_cpu_ns) + int(waiting_ns)) / 1e9
