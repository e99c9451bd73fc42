"""In-process fan-out of events to the streams open on this notifier, per workspace.

Publishing never waits for a subscriber: each one has a bounded queue, and a subscriber that
falls that far behind is closed instead. Its stream ends, and the client resumes with its last
event id, which replays the missed events from PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType

from services.core.events import EventRecord

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 1000  # Settings.subscriber_buffer in the service


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
        self._max_pending = max_pending
        self._on_close = on_close
        self._closed = False
        # One slot more than max_pending, so the end marker always fits.
        self._queue: asyncio.Queue[EventRecord | None] = asyncio.Queue(max_pending + 1)

    @property
    def closed(self) -> bool:
        return self._closed

    def offer(self, event: EventRecord) -> None:
        """Queues the event without waiting; a full queue closes the subscription."""
        if self._closed:
            return
        if self._queue.qsize() >= self._max_pending:
            self.overflowed = True
            log.warning("subscriber of %s fell behind; ending its stream", self.workspace_id)
            self.close()
            return
        self._queue.put_nowait(event)

    def close(self) -> None:
        """Ends the iteration after the events already queued; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(None)
        self._on_close(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> EventRecord:
        event = await self._queue.get()
        if event is None:
            self._queue.put_nowait(None)  # every later call ends too
            raise StopAsyncIteration
        return event

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
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._closed = False

    def subscribe(self, workspace_id: str) -> Subscription:
        """A new subscription; already closed when the hub is (the process is stopping)."""
        subscription = Subscription(workspace_id, self._max_pending, self._forget)
        if self._closed:
            subscription.close()
            return subscription
        self._subscriptions.setdefault(workspace_id, set()).add(subscription)
        return subscription

    def publish(self, event: EventRecord) -> None:
        """Hands the event to every subscriber of its workspace; never blocks."""
        for subscription in list(self._subscriptions.get(event.workspace_id, ())):
            subscription.offer(event)

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
        group.discard(subscription)
        if not group:
            del self._subscriptions[subscription.workspace_id]
