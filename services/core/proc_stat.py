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
