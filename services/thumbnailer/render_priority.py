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
autogroup (docs/scaling.md, "Shared cores"). Outside containers, Linux gives each session an
autogroup and shares the CPU between autogroups as between equal processes, whatever the
policies inside. A worker under SCHED_IDLE in the thumbnailer's session, held to one core with
a spinning process of another session (as PostgreSQL and RabbitMQ are), took 43% of it; beside
one of its own session, 0.2%. So a lowered worker starts a session of its own and lowers that
session's autogroup to the same niceness (19 for `idle`, the lowest a group has): 1.4% of the
core beside either. On the upload benchmark (2026-12-03), where PostgreSQL and RabbitMQ take
about 5% of the cycles: in alternated phases of 120 uploads (three idle and three saturated,
twice against the workers in the thumbnailer's session), uploads beside busy workers took
1.09x-1.19x as long at p50 as beside stopped ones, against 1.09x-1.31x; in four whole runs of
the benchmark against four, alternated, 1.15x-1.24x against 1.15x-1.26x: within its noise.

A worker waiting for a CPU is not stuck: the render pool does not hold that wait against it,
up to MAX_RENDER_WAIT_S (rendering.py)."""

from __future__ import annotations

import errno
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from services.core.config import ConfigError

IDLE = "idle"
MAX_NICE = 19
AUTOGROUP = Path("/proc/self/autogroup")
# Without CAP_SYS_ADMIN, Linux takes one autogroup change per 100 ms from the whole machine and
# answers EAGAIN to the others: workers that start together take turns, for up to 10 s.
AUTOGROUP_TRIES = 90
AUTOGROUP_PAUSE_S = 0.11


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
        """Lowers the calling process's priority, in a session of its own (the module's doc):
        for a new worker, before its first image. All of it is allowed without privileges."""
        if not (self.idle or self.nice):
            return
        own_autogroup(MAX_NICE if self.idle else self.nice)
        if self.idle:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        else:
            os.nice(self.nice)


def own_autogroup(nice: int) -> None:
    """Starts a session, and with it an autogroup, for the calling process, at `nice`. Where
    the kernel has no autogroups the session is all there is; inside a cgroup other than the
    root (a container) Linux does not use them, and the cgroup's weight orders it instead."""
    os.setsid()
    for _ in range(AUTOGROUP_TRIES):
        try:
            AUTOGROUP.write_text(str(nice))
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                _left_at_par(str(exc))
                return
            time.sleep(AUTOGROUP_PAUSE_S)
    _left_at_par(f"EAGAIN for {AUTOGROUP_TRIES * AUTOGROUP_PAUSE_S:.0f} s")


def _left_at_par(why: str) -> None:
    """Rendering at the session's share beats not rendering (a container may refuse the write,
    and does not use autogroups anyway); the thumbnailer's log shows this line."""
    print(
        f"image worker {os.getpid()}: its autogroup stayed at nice 0 ({why});"
        " outside a container it shares the CPU with other sessions at par",
        file=sys.stderr,
    )


SAME_PRIORITY = RenderPriority(idle=False)  # the caller's own
