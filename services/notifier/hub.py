"""In-process fan-out of events to the streams open on this notifier, per workspace.

Publishing never waits for a subscriber: each one has a bounded queue, and a subscriber that
falls that far behind is closed instead. Its stream ends, and the client resumes with its last
event id, which replays the missed events from PostgreSQL.

Heartbeats come from here too: one task per hub marks every quiet subscription, instead of a
timer per stream that every event re-arms (with 10,000 streams, those timers cost more than
the events).

An SSE stream that has caught up can also take its items directly (Subscription.go_direct): the
hub then writes each frame to its connection itself, instead of waking the stream's task per
event, which at 10,000 streams was most of the fan-out's time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final, Protocol

from services.core.events import EventRecord
from services.notifier.encodings import EventEncodings

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 1000  # Settings.subscriber_buffer in the service


class Heartbeat:
    """Yielded by a subscription that has had nothing to deliver for a heartbeat interval."""

    def __repr__(self) -> str:
        return "HEARTBEAT"


HEARTBEAT: Final = Heartbeat()


class DirectSink(Protocol):
    def __call__(self, item: EventRecord | Heartbeat, /) -> bool:
        """Delivers the item at once and returns True, or returns False when it cannot without
        waiting (the item is then queued for the stream's task instead)."""
        ...


class Subscription:
    """One stream's view of a workspace's live events: iterate it; it ends once closed."""

    def __init__(
        self,
        workspace_id: str,
        max_pending: int,
        on_close: Callable[[Subscription], None],
    ) -> None:
        self.workspace_id = workspace_id
        self.overflowed = False
        self.expired = False  # ended by expire_at
        self._expiry: asyncio.TimerHandle | None = None
        self._max_pending = max_pending
        self._on_close = on_close
        self._closed = False
        self._fresh = True  # something was offered since the last beat
        self._direct: DirectSink | None = None
        # One slot more than max_pending, so the end marker always fits.
        self._queue: asyncio.Queue[EventRecord | Heartbeat | None] = asyncio.Queue(max_pending + 1)

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, item: EventRecord | Heartbeat) -> None:
        """Queues the item without waiting; a full queue closes the subscription."""
        direct = self._direct  # None once closed
        if direct is not None:
            self._fresh = True
            if direct(item):
                return
            self._direct = None  # the stream's task takes over, starting with this item
        if self._closed:
            return
        if self._queue.qsize() >= self._max_pending:
            self.overflowed = True
            log.warning("subscriber of %s fell behind; ending its stream", self.workspace_id)
            self.close()
            return
        self._fresh = True
        self._queue.put_nowait(item)

    def go_direct(self, sink: DirectSink) -> None:
        """Hands later items to `sink` instead of the queue, until the sink refuses one (which
        is queued, and so are the items after it). Only while nothing is queued, so order
        holds: otherwise nothing changes, and the iterating task drains the queue first."""
        if not self._closed and self._queue.empty():
            self._direct = sink

    def beat(self) -> None:
        """Called every half heartbeat interval: a heartbeat if nothing was offered since the
        last call, so a quiet stream gets one at least every interval."""
        if self._fresh:
            self._fresh = False
        else:
            self.offer(HEARTBEAT)

    def expire_at(self, deadline: float) -> None:
        """Ends the subscription at `deadline` (seconds since the epoch), and marks it
        `expired`: the token that opened the stream is no longer accepted then, so its events
        stop too. The client subscribes again with a new token and resumes from its last id."""
        if self._closed:
            return
        if self._expiry is not None:
            self._expiry.cancel()
        delay_s = max(0.0, deadline - time.time())
        self._expiry = asyncio.get_running_loop().call_later(delay_s, self._expire)

    def _expire(self) -> None:
        self.expired = True
        log.info("a stream of %s ended: its token expired", self.workspace_id)
        self.close()

    def close(self) -> None:
        """Ends the iteration after the events already queued; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        self._direct = None
        self._queue.put_nowait(None)
        self._on_close(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> EventRecord | Heartbeat:
        item = await self._queue.get()
        if item is None:
            self._queue.put_nowait(None)  # every later call ends too
            raise StopAsyncIteration
        return item

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Hub:
    """Subscriptions by workspace. Owned by one notifier process; no global state."""

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._max_pending = max_pending
        # In subscription order (a dict, not a set): the fan-out writes to the sockets in the
        # order the kernel made them, which keeps its walk over their memory close to
        # sequential; in a set's hash order each send() cost about 40% more at 10,000 streams.
        self._subscriptions: dict[str, dict[Subscription, None]] = {}
        self._closed = False
        # Shared by the streams this hub feeds: each event is encoded once, not per stream.
        self.encodings = EventEncodings()

    def subscribe(self, workspace_id: str) -> Subscription:
        """A new subscription; already closed when the hub is (the process is stopping)."""
        subscription = Subscription(workspace_id, self._max_pending, self._forget)
        if self._closed:
            subscription.close()
            return subscription
        self._subscriptions.setdefault(workspace_id, {})[subscription] = None
        return subscription

    def publish(self, event: EventRecord) -> None:
        """Hands the event to every subscriber of its workspace; never blocks."""
        for subscription in list(self._subscriptions.get(event.workspace_id, ())):
            subscription.offer(event)

    def beat(self) -> None:
        """Heartbeats for the quiet subscriptions (Subscription.beat)."""
        # A copy: a beat that overflows a queue closes its subscription, which leaves the set.
        for subscription in [s for group in self._subscriptions.values() for s in group]:
            subscription.beat()

    async def run_heartbeats(self, interval_s: float) -> None:
        """Beats every half interval until cancelled; the hub's owner runs it as a task."""
        while True:
            await asyncio.sleep(interval_s / 2)
            self.beat()

    def end_all_streams(self) -> int:
        """Closes every subscription (their clients resume); returns how many there were."""
        subscriptions = [s for group in self._subscriptions.values() for s in group]
        for subscription in subscriptions:
            subscription.close()
        return len(subscriptions)

    def close(self) -> None:
        """Ends every stream and every later subscription: the process is stopping."""
        self._closed = True
        self.end_all_streams()

    def subscriber_count(self, workspace_id: str | None = None) -> int:
        if workspace_id is not None:
            return len(self._subscriptions.get(workspace_id, ()))
        return sum(len(group) for group in self._subscriptions.values())

    def _forget(self, subscription: Subscription) -> None:
        group = self._subscriptions.get(subscription.workspace_id)
        if group is None:
            return
        group.pop(subscription, None)
        if not group:
            del self._subscriptions[subscription.workspace_id]
