"""The thumbnailer's Prometheus metrics, in a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from services.core.photos import ThumbnailSize
from services.thumbnailer.imaging import Rendition
from services.thumbnailer.processing import Outcome

_PROCESSING_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_RENDER_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ThumbnailerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "thumbwire_thumbnailer_jobs",
            "Thumbnail job deliveries handled, by outcome and by the attempt they were.",
            ["outcome", "attempt"],
            registry=self.registry,
        )
        self.processing_seconds = Histogram(
            "thumbwire_thumbnailer_processing_seconds",
            "Time from receiving a job to settling it.",
            buckets=_PROCESSING_BUCKETS_S,
            registry=self.registry,
        )
        self.render_seconds = Histogram(
            "thumbwire_thumbnailer_render_seconds",
            "Time to resample and encode one thumbnail, by size (the shared decode excluded).",
            ["size"],
            buckets=_RENDER_BUCKETS_S,
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
        self.outbox_lag_seconds = Gauge(
            "thumbwire_thumbnailer_outbox_lag_seconds",
            "Age of the oldest outbox row not yet published (0 when the outbox is empty).",
            registry=self.registry,
        )
        self.parked_jobs = Gauge(
            "thumbwire_thumbnailer_parked_jobs",
            "Jobs waiting in the parking queue (given up on; see `thumbwire dlq`).",
            registry=self.registry,
        )
        for outcome in Outcome:  # every outcome shows from the start, at zero
            self.jobs.labels(outcome=str(outcome), attempt="1")
        for size in ThumbnailSize:
            self.render_seconds.labels(size=str(size))

    def job_ended(self, outcome: Outcome, attempt: int) -> None:
        self.jobs.labels(outcome=str(outcome), attempt=str(attempt)).inc()

    def rendered(self, rendition: Rendition) -> None:
        for thumbnail in rendition.thumbnails:
            self.render_seconds.labels(size=str(thumbnail.size)).observe(thumbnail.seconds)

    def jobs_with(self, outcome: Outcome) -> float:
        """How many jobs ended with `outcome` so far, whatever their attempt."""
        return sum(
            sample.value
            for metric in self.registry.collect()
            for sample in metric.samples
            if sample.name == "thumbwire_thumbnailer_jobs_total"
            and sample.labels.get("outcome") == str(outcome)
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
