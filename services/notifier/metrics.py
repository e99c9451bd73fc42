"""The notifier's Prometheus metrics, in a registry of its own (no global state): open
subscriptions and events delivered, by transport (grpc, sse).

Deliveries are counted in plain ints (Tally) that a collector reads at scrape time, not with a
prometheus Counter: a Counter takes a lock on every increment, and counting each of 10,000
deliveries of one event that way was 9% of the fan-out's time. The ints are only touched from
the event loop's thread, as is the /metrics handler that reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from services.core.events import EventRecord

TRANSPORTS = ("grpc", "sse")


class Tally:
    """A count that only grows; `count += 1` is all a delivery costs."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class DeliveriesCollector(Collector):
    """thumbwire_notifier_events_delivered_total, from the tallies, by transport."""

    def __init__(self, tallies: dict[str, Tally]) -> None:
        self._tallies = tallies

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "thumbwire_notifier_events_delivered",
            "Events handed to a subscriber's stream (replayed or live), by transport.",
            labels=["transport"],
        )
        for transport, tally in self._tallies.items():
            family.add_metric([transport], tally.count)
        yield family


class NotifierMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.subscribers = Gauge(
            "thumbwire_notifier_subscribers",
            "Event streams open on this notifier, by transport.",
            ["transport"],
            registry=self.registry,
        )
        self.delivered = {transport: Tally() for transport in TRANSPORTS}
        self.registry.register(DeliveriesCollector(self.delivered))
        for transport in TRANSPORTS:
            self.subscribers.labels(transport=transport)

    async def counted(
        self, transport: str, events: AsyncIterator[EventRecord]
    ) -> AsyncIterator[EventRecord]:
        """`events`, counting each one and the stream itself while it is open. Close it
        (contextlib.aclosing) so that the stream stops being counted at once."""
        open_streams = self.subscribers.labels(transport=transport)
        delivered = self.delivered[transport]
        open_streams.inc()
        try:
            async for event in events:
                delivered.count += 1
                yield event
        finally:
            open_streams.dec()
