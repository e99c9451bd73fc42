"""Settings read once from the THUMBWIRE_* environment variables of CONTRACT.md."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

DEV_S3_ENDPOINT = "http://127.0.0.1:9000"


class ConfigError(ValueError):
    """A setting is missing or malformed: the process cannot start. Says which, never its value
    when the value is a secret."""


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql://postgres@127.0.0.1:5432/thumbwire"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    # None: `make run` starts an embedded S3 server at DEV_S3_ENDPOINT.
    s3_endpoint: str | None = None
    s3_access_key: str = "minioadmin"
    # repr=False: secrets stay out of logs and test reports that print the settings.
    s3_secret_key: str = dataclasses.field(default="minioadmin", repr=False)
    s3_bucket: str = "thumbwire"
    s3_region: str = "us-east-1"
    namespace: str = "thumbwire"
    # The HS256 key of bearer tokens; the upload service and the notifier refuse to start
    # without it (services.core.auth).
    auth_secret: str | None = dataclasses.field(default=None, repr=False)
    max_upload_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 100_000_000
    retry_base_ms: int = 2000
    max_attempts: int = 5
    upload_addr: str = "127.0.0.1:50051"
    notifier_addr: str = "127.0.0.1:50052"
    gateway_addr: str = "127.0.0.1:8080"
    thumbnailer_metrics_addr: str = "127.0.0.1:9102"
    # The upload service's /metrics (the notifier serves its own on the gateway).
    upload_metrics_addr: str = "127.0.0.1:9101"
    # How often each service checks that its database and broker are reachable; gRPC health
    # and the thumbnailer's /healthz say NOT_SERVING (503) while either is not.
    readiness_interval_s: float = 2.0
    # Log lines as "text" (for a terminal) or "json" (one object a line, for a collector).
    log_format: str = "text"
    # Base of Thumbnail.url; None: http://<gateway_addr>.
    public_url: str | None = None
    # Images processed at once by one thumbnailer; 0: one per core.
    thumbnailer_concurrency: int = 0
    # How often an idle outbox relay looks for rows it was not woken for.
    outbox_poll_interval_s: float = 1.0
    sse_heartbeat_s: float = 10.0
    # Live events queued for one stream at most: a subscriber that falls further behind is
    # disconnected and resumes from its last event id (the log replays what it missed).
    subscriber_buffer: int = 1000
    # One write to one stream (SSE or gRPC) may wait this long for a client that does not read;
    # past it the connection is dropped, so a stuck client holds no buffers for long.
    stream_write_timeout_s: float = 10.0
    # A photo unfinished and untouched this long, with no job in the outbox, gets a new job
    # (its job was lost); keep it above the longest wait you expect in the jobs queue.
    sweep_age_s: float = 600.0
    # How often each thumbnailer looks for such photos (one of them sweeps at a time).
    sweep_interval_s: float = 60.0
    # Events older than this are pruned from the log (0: kept for ever); a client resuming
    # from before the pruned history gets stream.reset first.
    event_retention_s: float = 7 * 24 * 3600.0
    # One image's processing, in a thumbnailer worker process: more of the worker's CPU time,
    # and the worker is killed and the photo fails; more memory, and the photo fails (0:
    # unlimited). A worker that spends ten times the time limit neither computing nor waiting
    # for a CPU (stuck), or has no answer after 10 minutes, fails the attempt, which is retried.
    image_time_limit_s: float = 30.0
    image_memory_limit_mb: int = 2048
    # The image worker processes' share of the CPU (services/thumbnailer/render_priority.py):
    # "idle", the cycles that nothing else beside them wants; or a niceness (0-19) to add to
    # the thumbnailer's own, "0" being the same priority.
    render_priority: str = "idle"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Reads THUMBWIRE_<FIELD> for every field; unset or empty keeps the default."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in fields(cls):
            raw = env.get(f"THUMBWIRE_{field.name.upper()}", "")
            if raw == "":
                continue
            values[field.name] = _parse(field.name, raw, field.type)
        return cls(**values)

    def to_env(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """`environ` (default: this process's) with every THUMBWIRE_* variable replaced by
        these settings: what makes from_env() in a child process return them."""
        env = os.environ if environ is None else environ
        out = {k: v for k, v in env.items() if not k.startswith("THUMBWIRE_")}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None:
                out[f"THUMBWIRE_{field.name.upper()}"] = str(value)
        return out

    @property
    def s3_endpoint_or_dev(self) -> str:
        return self.s3_endpoint or DEV_S3_ENDPOINT

    @property
    def public_base_url(self) -> str:
        return (self.public_url or f"http://{self.gateway_addr}").rstrip("/")

    @property
    def concurrency(self) -> int:
        return self.thumbnailer_concurrency or os.cpu_count() or 1


def _parse(name: str, raw: str, type_name: object) -> object:
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"THUMBWIRE_{name.upper()} must be a number, got {raw!r}") from exc
    return raw
