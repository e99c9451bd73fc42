"""The image workers' share of the CPU beside the processes they run with
(THUMBWIRE_RENDER_PRIORITY).

Thumbnails are background work: an upload waits on its caller, a thumbnail does not. `idle`
(the default) puts each worker under Linux's SCHED_IDLE policy: it runs whenever a core has
nothing else to do, and the scheduler treats a core running only such work as free, so an
upload, a stream or the thumbnailer's own loop takes it at once. A niceness (0-19) keeps the
normal policy, with that much added to the worker's nice value: the workers then keep a share
of a busy core (about a tenth at 10), at the cost of the work beside them.

Measured (docs/benchmarks.md, upload latency, 2026-12-03): eight clients uploading without
pause took 1.13x-1.35x as long at p50 beside a thumbnailer with a backlog and its workers at
nice 10 as beside a stopped one, and 1.08x-1.20x with its workers idle; meanwhile those made
52-94% as many thumbnails as at nice 10 (eleven runs), from the cycles the uploads left.

Both order only the processes of one scheduling group: a container's cgroup, or a session's
autogroup (docs/scaling.md, "Shared cores"). A worker waiting for a CPU is not stuck: the
render pool does not hold that wait against it, up to MAX_RENDER_WAIT_S (rendering.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from services.core.config import ConfigError

IDLE = "idle"
MAX_NICE = 19


@dataclass(frozen=True)
class RenderPriority:
    """`idle`, or the niceness to add under the normal policy."""

    idle: bool
    nice: int = 0

    @classmethod
    def parse(cls, raw: str) -> RenderPriority:
        """`idle` or a whole number from 0 to 19; ConfigError for anything else."""
        text = raw.strip().lower()
        if text == IDLE:
            return cls(idle=True)
        if text.isdigit() and int(text) <= MAX_NICE:
            return cls(idle=False, nice=int(text))
        raise ConfigError(
            f"THUMBWIRE_RENDER_PRIORITY must be {IDLE!r} or a niceness from 0 to {MAX_NICE},"
            f" got {raw!r}"
        )

    def __str__(self) -> str:
        return IDLE if self.idle else str(self.nice)

    def apply(self) -> None:
        """Lowers the calling process's priority: both are allowed without privileges."""
        if self.idle:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        elif self.nice:
            os.nice(self.nice)


SAME_PRIORITY = RenderPriority(idle=False)  # the caller's own
