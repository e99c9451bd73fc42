"""The thumbnail job: what the upload service asks of the thumbnailers, and the headers that
carry its history from one attempt to the next."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.core import outbox
from services.core.topology import JOB_ROUTING_KEY

# The attempt a delivery is, counted by thumbwire itself rather than read from x-death, whose
# meaning changed across RabbitMQ versions.
ATTEMPT_HEADER = "x-thumbwire-attempt"
# Why the previous attempt failed: what a job that can no longer be tried is failed with.
ERROR_HEADER = "x-thumbwire-error"


class InvalidJob(ValueError):
    """A message on the jobs queue that is not a thumbnail job."""


@dataclass(frozen=True)
class ThumbnailJob:
    workspace_id: str
    photo_id: uuid.UUID

    def to_body(self) -> bytes:
        return outbox.json_body({"workspace_id": self.workspace_id, "photo_id": str(self.photo_id)})

    @classmethod
    def from_body(cls, body: bytes) -> ThumbnailJob:
        try:
            data = json.loads(body)
            return cls(workspace_id=str(data["workspace_id"]), photo_id=uuid.UUID(data["photo_id"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidJob(f"not a thumbnail job: {exc}") from exc


@dataclass(frozen=True)
class JobHistory:
    """What the headers say of the attempts before this delivery."""

    attempt: int = 1
    last_error: str = ""

    def to_headers(self) -> dict[str, Any]:
        headers: dict[str, Any] = {ATTEMPT_HEADER: self.attempt}
        if self.last_error:
            headers[ERROR_HEADER] = self.last_error
        return headers

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any] | None) -> JobHistory:
        """Missing or malformed headers read as a first attempt: a job is never refused for
        its bookkeeping."""
        headers = headers or {}
        try:
            attempt = max(int(headers.get(ATTEMPT_HEADER, 1)), 1)
        except (TypeError, ValueError):
            attempt = 1
        error = headers.get(ERROR_HEADER, "")
        if isinstance(error, bytes):
            error = error.decode(errors="replace")
        return cls(attempt, str(error))


def job_message(
    job: ThumbnailJob, history: JobHistory | None = None, routing_key: str = JOB_ROUTING_KEY
) -> outbox.OutboxMessage:
    """The job as an outbox message: to the jobs queue, or with `routing_key` to a retry or
    the parking queue."""
    headers = (history or JobHistory()).to_headers()
    return outbox.OutboxMessage("jobs", routing_key, job.to_body(), headers)


async def enqueue_job(
    conn: asyncpg.Connection,
    job: ThumbnailJob,
    history: JobHistory | None = None,
    routing_key: str = JOB_ROUTING_KEY,
) -> None:
    """Queues the job through the outbox (job_message). Call inside the transaction that makes
    it due."""
    await outbox.enqueue(conn, job_message(job, history, routing_key))
