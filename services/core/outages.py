"""Calls that ride out a short outage of what they depend on: tried again, with growing
pauses, while they fail with an error that says "down for now", up to a time limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

_T = TypeVar("_T")

FIRST_PAUSE_S = 0.25
LONGEST_PAUSE_S = 5.0


async def ride_out(
    call: Callable[[], Awaitable[_T]],
    is_outage: Callable[[Exception], bool],
    give_up_after_s: float,
    on_pause: Callable[[Exception, float], object],
    first_pause_s: float = FIRST_PAUSE_S,
    longest_pause_s: float = LONGEST_PAUSE_S,
) -> _T:
    """`call()`, tried again while it raises an error for which `is_outage` holds, for up to
    `give_up_after_s`; then that error is raised, as is any other at once. The pauses double
    from `first_pause_s` to `longest_pause_s`; `on_pause(error, pause_s)` hears of each."""
    deadline = time.monotonic() + give_up_after_s
    pause_s = first_pause_s
    while True:
        try:
            return await call()
        except Exception as exc:
            remaining_s = deadline - time.monotonic()
            if not is_outage(exc) or remaining_s <= 0:
                raise
            this_pause_s = min(pause_s, remaining_s)
            on_pause(exc, this_pause_s)
            await asyncio.sleep(this_pause_s)
            pause_s = min(pause_s * 2, longest_pause_s)
