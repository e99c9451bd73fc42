"""The event log: each photo change is a row in `events`, written in the same transaction as the
change, and handed to the outbox for the notifiers."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg

from services.core import outbox, tracing
from services.core.photos import PHOTO_COLUMNS, PhotoRecord

# Event writes of one workspace take this lock (with the workspace's hash) until they commit,
# so that within a workspace, id order is commit order and a resume point never skips a row
# that commits later with a smaller id.
_EVENT_LOCK_CLASS = 0x7477


def _iso_utc(column: str) -> str:
    """`column` (a timestamptz) as datetime.isoformat() gives it in UTC, whatever the session's
    TimeZone; microseconds always written (fromisoformat reads both)."""
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


def _photo_json_value(column: str) -> str:
    if column == "id":
        return "changed.id::text"
    if column.endswith("_at"):
        return _iso_utc(f"changed.{column}")
    return f"changed.{column}"


# PhotoRecord.to_json, built by PostgreSQL from the changed row.
_PHOTO_JSON = "jsonb_build_object({})".format(
    ", ".join(
        f"'{column}', {_photo_json_value(column)}"
        for column in PHOTO_COLUMNS.replace(" ", "").split(",")
    )
)

# A photo change and its event in one statement: the change ({change}, which returns the
# photo's PHOTO_COLUMNS, with parameters $1 to ${n}), the workspace's event lock, the event's
# row, its outbox row (with a NOTIFY, unless a relay of this process is woken after the commit
# instead: outbox.relays_here), and the message that goes with the change ({also}, written
# first).
# Run outside a transaction it is one round trip, and the lock is held only within the server
# for that one statement: every event writer of the workspace waits for it, and each round trip
# while it was held was one more wait for a process that may not be scheduled. (With the change,
# the lock, the outbox rows and the commit as five round trips, the upload benchmark's uploads
# waited 6-9 ms each for the lock idle and 9-23 ms saturated; see docs/benchmarks.md.)
# A change that touches no row takes no lock and writes nothing. The materialized CTE is read
# before the event row is formed, so its id (its default, nextval) is drawn only once the lock
# is held. The outbox body is EventRecord.to_json's.
_CHANGE_WITH_EVENT = """
WITH changed AS ({change}),{also}
locked AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(${lock}, hashtext(workspace_id)) FROM changed{after_also}),
event AS (
    INSERT INTO events (workspace_id, type, photo_id, item_id, photo, error, retry_delay_ms)
    SELECT changed.workspace_id, ${type}::text, changed.id, changed.item_id, {photo_json},
           ${error}::text, ${delay}::int
      FROM changed, locked
    RETURNING id, workspace_id, photo_id, item_id, photo, occurred_at),
queued AS (
    INSERT INTO outbox (exchange, routing_key, body, headers)
    SELECT 'events', ${type}::text,
           convert_to(jsonb_build_object(
               'id', id, 'type', ${type}::text, 'workspace_id', workspace_id,
               'photo_id', photo_id::text, 'item_id', item_id, 'photo', photo,
               'error', ${error}::text, 'retry_delay_ms', ${delay}::int,
               'occurred_at', {occurred_at})::text, 'UTF8'),
           ${trace}::jsonb
      FROM event
    RETURNING id)
SELECT changed.*, event.id AS event_id, event.occurred_at AS event_occurred_at{notify}
  FROM changed, event, queued"""
_NOTIFY = """,
       pg_notify(${channel}, current_setting('application_name'))"""
_ALSO = """
also AS (
    INSERT INTO outbox (exchange, routing_key, body, headers)
    SELECT ${also_exchange}::text, ${also_key}::text, ${also_body}::bytea, ${also_headers}::jsonb
      FROM changed
    RETURNING id),"""
# The lock reads `also` first, which makes PostgreSQL write that row first (a data-modifying CTE
# that nothing reads is run after the query). The relay publishes in id order, each message
# after the one before is confirmed, so a job written after its event waited for the event's
# publish: 1.5 ms more from an upload's commit to its job at the thumbnailer. The row is also
# written before the lock is taken instead of under it.
_AFTER_ALSO = ", (SELECT count(*) FROM also) AS also_first"
_EVENT_PARAMETERS = ("lock", "type", "error", "delay", "trace")
_NOTIFY_PARAMETERS = ("channel",)
_ALSO_PARAMETERS = ("also_exchange", "also_key", "also_body", "also_headers")


@functools.cache
def _change_with_event(change: str, change_parameters: int, also: bool, notify: bool) -> str:
    """The statement for `change`, built once and kept: every upload and every status change
    of a job asks for it."""
    names = (
        _EVENT_PARAMETERS
        + (_NOTIFY_PARAMETERS if notify else ())
        + (_ALSO_PARAMETERS if also else ())
    )
    numbers = {name: change_parameters + 1 + i for i, name in enumerate(names)}
    return _CHANGE_WITH_EVENT.format(
        change=change,
        photo_json=_PHOTO_JSON,
        occurred_at=_iso_utc("occurred_at"),
        also=_ALSO.format(**numbers) if also else "",
        after_also=_AFTER_ALSO if also else "",
        notify=_NOTIFY.format(**numbers) if notify else "",
        **numbers,
    )


def _in_transaction(conn: asyncpg.Connection | asyncpg.Pool) -> bool:
    """A pool's statements each commit on their own; a connection's may be part of more."""
    return not isinstance(conn, asyncpg.Pool) and conn.is_in_transaction()


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
            "retry_delay_ms": self.retry_delay_ms,
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


async def change_photo(
    conn: asyncpg.Connection | asyncpg.Pool,
    change: str,
    args: Sequence[object],
    type_: EventType,
    error: str = "",
    retry_delay_ms: int = 0,
    also: outbox.OutboxMessage | None = None,
) -> EventRecord | None:
    """Runs `change` (one statement that returns the photo's PHOTO_COLUMNS, with `args` as
    its parameters) with its event, queued for the notifiers, and `also` queued with it, in
    one statement (_CHANGE_WITH_EVENT). The event, whose photo is the changed row; None if the
    change touched no row, in which case nothing is written.

    Outside a transaction it commits on its own; inside one, the event lock is held until the
    transaction commits. A relay in this process is woken once the statement has committed,
    instead of by a NOTIFY from the statement (outbox.relays_here says why)."""
    also_args = (
        (also.exchange, also.routing_key, also.body, tracing.with_trace(also.headers))
        if also
        else ()
    )
    wake_here = outbox.relays_here() and not _in_transaction(conn)
    notify_args = () if wake_here else (outbox.NOTIFY_CHANNEL,)
    row = await conn.fetchrow(
        _change_with_event(change, len(args), also is not None, not wake_here),
        *args,
        _EVENT_LOCK_CLASS,
        str(type_),
        error,
        retry_delay_ms,
        tracing.with_trace(None),
        *notify_args,
        *also_args,
    )
    if row is None:
        return None
    if wake_here:
        outbox.wake_relays_here()
    photo = PhotoRecord.from_row(row)
    return EventRecord(
        id=row["event_id"],
        type=type_,
        workspace_id=photo.workspace_id,
        photo_id=photo.id,
        item_id=photo.item_id,
        photo=photo,
        error=error,
        occurred_at=row["event_occurred_at"],
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
