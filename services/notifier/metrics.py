"""The notifier's Prometheus metrics, in a registry of its own (no global state): open
subscriptions and events sent, by transport (grpc, sse)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.core.events import EventRecord

TRANSPORTS = ("grpc", "sse")


class NotifierMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.subscribers = Gauge(
            "thumbwire_notifier_subscribers",
            "Event streams open on this notifier, by transport.",
            ["transport"],
            registry=self.registry,
        )
        self.events_sent = Counter(
            "thumbwire_notifier_events_delivered",
            "Events handed to a subscriber's stream (replayed or live), by transport.",
            ["transport"],
            registry=self.registry,
        )
        for transport in TRANSPORTS:
            self.subscribers.labels(transport=transport)
            self.events_sent.labels(transport=transport)

    async def counted(
        self, transport: str, events: AsyncIterator[EventRecord]
    ) -> AsyncIterator[EventRecord]:
        """`events`, counting each one and the stream itself while it is open. Close it
        (contextlib.aclosing) so that the stream stops being counted at once."""
        open_streams = self.subscribers.labels(transport=transport)
        sent = self.events_sent.labels(transport=transport)
        open_streams.inc()
        try:
            async for event in events:
                sent.inc()
                yield event
        finally:
            open_streams.dec()
