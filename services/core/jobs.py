"""The thumbnail job: what the upload service asks of the thumbnailers."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import asyncpg

from services.core import outbox
from services.core.topology import JOB_ROUTING_KEY

# The attempt a delivery is, counted by thumbwire itself rather than read from x-death.
ATTEMPT_HEADER = "x-thumbwire-attempt"


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


async def enqueue_job(conn: asyncpg.Connection, job: ThumbnailJob, attempt: int = 1) -> None:
    """Queues the job through the outbox. Call inside the transaction that makes it due."""
    await outbox.enqueue(conn, "jobs", JOB_ROUTING_KEY, job.to_body(), {ATTEMPT_HEADER: attempt})
