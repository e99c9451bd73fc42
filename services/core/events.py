"""The event log: each photo change is a row in `events`, written in the same transaction as the
change, and handed to the outbox for the notifiers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from services.core import outbox, tracing
from services.core.photos import PhotoRecord

# Event writes of one workspace take this lock (with the workspace's hash) until they commit,
# so that within a workspace, id order is commit order and a resume point never skips a row
# that commits later with a smaller id.
_EVENT_LOCK_CLASS = 0x7477
# The lock, the event's row, and its outbox row with the NOTIFY, in one round trip: the lock is
# held until the commit and every event writer of the workspace waits for it, so each round
# trip while it is held is one more wait for a process that may not be scheduled. (With the
# outbox row a statement of its own, the upload benchmark's uploads waited 6-9 ms each for the
# lock idle and 9-23 ms saturated; in one, 2.5-4 and 3-7.5.) The materialized CTE is read before
# the row is formed, so the row's id (its default, nextval) is drawn only once the lock is held.
# The outbox body is the event's JSON: the fields known beforehand ($9) with the row's id and
# time (in UTC, whatever the server's TimeZone), as EventRecord.to_json gives them.
_RECORD = """
WITH locked AS MATERIALIZED (SELECT pg_advisory_xact_lock($1, hashtext($2))),
event AS (
    INSERT INTO events (workspace_id, type, photo_id, item_id, photo, error, retry_delay_ms)
    SELECT $2, $3, $4, $5, $6, $7, $8 FROM locked
    RETURNING id, occurred_at),
queued AS (
    INSERT INTO outbox (exchange, routing_key, body, headers)
    SELECT 'events', $3,
           convert_to(($9::jsonb || jsonb_build_object(
               'id', id,
               'occurred_at', to_char(occurred_at AT TIME ZONE 'UTC',
                                      'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')))::text, 'UTF8'),
           $10
      FROM event
    RETURNING id)
SELECT event.id, event.occurred_at, pg_notify($11, current_setting('application_name'))
  FROM event, queued"""


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
            **_content_json(
                self.type,
                self.workspace_id,
                self.photo_id,
                self.item_id,
                self.photo,
                self.error,
                self.retry_delay_ms,
            ),
            "occurred_at": self.occurred_at.isoformat(),
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


def _content_json(
    type_: EventType,
    workspace_id: str,
    photo_id: uuid.UUID | None,
    item_id: str,
    photo: PhotoRecord | None,
    error: str,
    retry_delay_ms: int,
) -> dict[str, Any]:
    """An event's JSON but its id and time, which the database gives it."""
    return {
        "type": str(type_),
        "workspace_id": workspace_id,
        "photo_id": str(photo_id) if photo_id else "",
        "item_id": item_id,
        "photo": photo.to_json() if photo else None,
        "error": error,
        "retry_delay_ms": retry_delay_ms,
    }


async def record_event(
    conn: asyncpg.Connection,
    type_: EventType,
    photo: PhotoRecord,
    error: str = "",
    retry_delay_ms: int = 0,
) -> EventRecord:
    """Appends an event for `photo` and queues it for the notifiers. Call inside a transaction."""
    content = _content_json(
        type_, photo.workspace_id, photo.id, photo.item_id, photo, error, retry_delay_ms
    )
    row = await conn.fetchrow(
        _RECORD,
        _EVENT_LOCK_CLASS,
        photo.workspace_id,
        str(type_),
        photo.id,
        photo.item_id,
        content["photo"],
        error,
        retry_delay_ms,
        content,
        tracing.with_trace(None),
        outbox.NOTIFY_CHANNEL,
    )
    return EventRecord(
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
