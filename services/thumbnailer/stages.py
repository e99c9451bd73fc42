"""Where one attempt's time went, as `key=value` pairs in its "thumbnails ready" log line, so
that a photo's latency can be taken apart from the logs (bench/ready_latency.py does).

    received=<epoch s> claim=<s> fetch=<s> render=<s> decode=<s> large=<s> medium=<s>
    small=<s> placeholder=<s> store=<s> commit=<s> committed=<epoch s>

`received` and `committed` are wall-clock times (time.time()), to compare with the event log
and with a client's clock on the same machine; the others are durations. `render` is the
whole wait for a worker process, of which decode, the sizes and placeholder are the worker's
own work: the rest is the trip through the pipe and the wait for a free worker."""

from __future__ import annotations

import time

from services.thumbnailer.imaging import Rendition


class StageClock:
    """Laps of one attempt, in the order they ran."""

    def __init__(self) -> None:
        self.received = time.time()
        self._last = time.perf_counter()
        self._fields: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        """Ends `stage`: the time since the previous lap (or the start)."""
        now = time.perf_counter()
        self._fields[stage] = now - self._last
        self._last = now

    def rendered(self, rendition: Rendition) -> None:
        """Ends the render stage, with the worker's own timings in it."""
        self.lap("render")
        self._fields["decode"] = rendition.decode_seconds
        for thumbnail in rendition.thumbnails:
            self._fields[str(thumbnail.size)] = thumbnail.seconds
        self._fields["placeholder"] = rendition.placeholder_seconds

    def summary(self) -> str:
        """The log line's pairs; `committed` is now."""
        pairs = [f"received={self.received:.6f}"]
        pairs += [f"{stage}={seconds:.6f}" for stage, seconds in self._fields.items()]
        pairs.append(f"committed={time.time():.6f}")
        return " ".join(pairs)
