"""What the streams make of an event (an SSE frame), made once per event for all of them.

The hub hands one event to every subscriber of its workspace; with 10,000 SSE streams of one
workspace, each encoding the same JSON was about a fifth of the fan-out's time. Replayed events
are separate objects with the same content, so the key is the event's identity in the log."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from services.core.events import EventRecord

DEFAULT_KEPT = 256


class Latest:
    """The last event of one kind and its encoding: what a fan-out asks for 10,000 times in a
    row, found by the event's identity, without building the memo's key each time."""

    __slots__ = ("encoded", "event")

    def __init__(self) -> None:
        self.event: EventRecord | None = None
        self.encoded = b""


class EventEncodings:
    """A bounded memo of encodings by (event, kind); the oldest events are forgotten first."""

    def __init__(self, kept: int = DEFAULT_KEPT) -> None:
        self._kept = kept
        self._encoded: OrderedDict[tuple[int, str, str, str], bytes] = OrderedDict()
        self._latest: dict[str, Latest] = {}

    def latest(self, kind: str) -> Latest:
        """The slot of `kind`'s last encoding, shared by whoever writes that kind."""
        return self._latest.setdefault(kind, Latest())

    def get(self, event: EventRecord, kind: str, encode: Callable[[EventRecord], bytes]) -> bytes:
        # The type too: a stream.reset carries the id of the horizon, which a real event had.
        key = (event.id, str(event.type), event.workspace_id, kind)
        encoded = self._encoded.get(key)
        if encoded is None:
            encoded = self._encoded[key] = encode(event)
            if len(self._encoded) > self._kept:
                self._encoded.popitem(last=False)
        return encoded
