"""The event log: each photo change is a row in `events`, written in the same transaction as the
change, and handed to the outbox for the notifiers."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from services.core import outbox
from services.core.photos import PhotoRecord

# Event writes of one workspace take this lock (with the workspace's hash) until they commit,
# so that within a workspace, id order is commit order and a resume point never skips a row
# that commits later with a smaller id.
_EVENT_LOCK_CLASS = 0x7477
# The lock and the row in one round trip, since the lock is held until the commit and every
# event writer of the workspace waits for it. The materialized CTE is read before the row is
# formed, so the row's id (its default, nextval) is drawn only once the lock is held.
_LOCK_AND_INSERT = """
WITH locked AS MATERIALIZED (SELECT pg_advisory_xact_lock($1, hashtext($2)))
INSERT INTO events (workspace_id, type, photo_id, item_id, photo, error, retry_delay_ms)
SELECT $2, $3, $4, $5, $6, $7, $8 FROM locked
RETURNING id, occurred_at"""


class EventType(StrEnum):
    UPLOADED = "photo.uploaded"
    PROCESSING = "photo.thumbnail_processing"
    RETRYING = "photo.thumbnail_retrying"
    READY = "photo.thumbnail_ready"
    FAILED = "photo.thumbnail_failed"
    DELETED = "photo.deleted"
    STREAM_RESET = "stream.reset"


@dataclass(frozen=True)
class EventRecord:
    id: int
    type: EventType
    workspace_id: str
    photo_id: uuid.UUID | None
    item_id: str
    photo: PhotoRecord | None
    error: str
    occurred_at: datetime
    retry_delay_ms: int = 0  # photo.thumbnail_retrying: the wait before the next attempt

    @property
    def attempt(self) -> int:
        """The attempts made when the event happened (the one in progress included)."""
        return self.photo.thumbnail_attempts if self.photo else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": str(self.type),
            "workspace_id": self.workspace_id,
            "photo_id": str(self.photo_id) if self.photo_id else "",
            "item_id": self.item_id,
            "photo": self.photo.to_json() if self.photo else None,
            "error": self.error,
            "occurred_at": self.occurred_at.isoformat(),
            "retry_delay_ms": self.retry_delay_ms,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EventRecord:
        return cls(
            id=int(data["id"]),
            type=EventType(data["type"]),
            workspace_id=data["workspace_id"],
            photo_id=uuid.UUID(data["photo_id"]) if data.get("photo_id") else None,
            item_id=data.get("item_id", ""),
            photo=PhotoRecord.from_json(data["photo"]) if data.get("photo") else None,
            error=data.get("error", ""),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            retry_delay_ms=int(data.get("retry_delay_ms", 0)),
        )

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> EventRecord:
        return cls(
            id=row["id"],
            type=EventType(row["type"]),
            workspace_id=row["workspace_id"],
            photo_id=row["photo_id"],
            item_id=row["item_id"],
            photo=PhotoRecord.from_json(row["photo"]) if row["photo"] else None,
            error=row["error"],
            occurred_at=row["occurred_at"],
            retry_delay_ms=row["retry_delay_ms"],
        )


async def record_event(
    conn: asyncpg.Connection,
    type_: EventType,
    photo: PhotoRecord,
    error: str = "",
    retry_delay_ms: int = 0,
) -> EventRecord:
    """Appends an event for `photo` and queues it for the notifiers. Call inside a transaction."""
    row = await conn.fetchrow(
        _LOCK_AND_INSERT,
        _EVENT_LOCK_CLASS,
        photo.workspace_id,
        str(type_),
        photo.id,
        photo.item_id,
        photo.to_json(),
        error,
        retry_delay_ms,
    )
    event = EventRecord(
        id=row["id"],
        type=type_,
        workspace_id=photo.workspace_id,
        photo_id=photo.id,
        item_id=photo.item_id,
        photo=photo,
        error=error,
        occurred_at=row["occurred_at"],
        retry_delay_ms=retry_delay_ms,
    )
    body = json.dumps(event.to_json()).encode()
    await outbox.enqueue(conn, "events", str(type_), body)
    return event


async def events_after(
    conn: asyncpg.Connection | asyncpg.Pool, workspace_id: str, after_id: int, limit: int = 500
) -> list[EventRecord]:
    """A workspace's events with ids above `after_id`, oldest first."""
    rows = await conn.fetch(
        "SELECT id, type, workspace_id, photo_id, item_id, photo, error, occurred_at,"
        " retry_delay_ms FROM events WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        workspace_id,
        after_id,
        limit,
    )
    return [EventRecord.from_row(r) for r in rows]
