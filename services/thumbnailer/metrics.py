"""The thumbnailer's Prometheus metrics, in a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from services.thumbnailer.processing import Outcome

_PROCESSING_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ThumbnailerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "thumbwire_thumbnailer_jobs",
            "Thumbnail jobs handled, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.processing_seconds = Histogram(
            "thumbwire_thumbnailer_processing_seconds",
            "Time from receiving a job to settling it.",
            buckets=_PROCESSING_BUCKETS_S,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "thumbwire_thumbnailer_jobs_in_flight",
            "Jobs being processed now.",
            registry=self.registry,
        )
        self.swept = Counter(
            "thumbwire_thumbnailer_swept_photos",
            "Unfinished photos given a new job because theirs was lost.",
            registry=self.registry,
        )
        for outcome in Outcome:  # every outcome shows from the start, at zero
            self.jobs.labels(outcome=str(outcome))

    def jobs_with(self, outcome: Outcome) -> float:
        """How many jobs ended with `outcome` so far."""
        labels = {"outcome": str(outcome)}
        return self.registry.get_sample_value("thumbwire_thumbnailer_jobs_total", labels) or 0.0

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
