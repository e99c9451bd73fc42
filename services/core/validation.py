"""Checks of ids and text that clients send; each failure says what is wrong."""

from __future__ import annotations

import re
import uuid

from services.core.errors import InvalidArgument

# Ids become parts of object keys and URLs, so they are kept to a safe alphabet.
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_CAPTION_CHARS = 2000
MAX_FILENAME_CHARS = 255


def workspace_id(value: str) -> str:
    return _identifier("workspace_id", value)


def item_id(value: str) -> str:
    return _identifier("item_id", value)


def photo_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument(f"photo_id must be a UUID, got {value!r:.60}") from None


def caption(value: str) -> str:
    if len(value) > MAX_CAPTION_CHARS:
        raise InvalidArgument(f"caption is {len(value)} characters; at most {MAX_CAPTION_CHARS}")
    return value


def filename(value: str) -> str:
    """Keeps only the last path part, without control characters: it is shown, never used."""
    name = value.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    return name[:MAX_FILENAME_CHARS]


def after_event_id(value: int, name: str = "after_event_id") -> int:
    if value < 0:
        raise InvalidArgument(f"{name} must be 0 (live events only) or a positive event id")
    return value


def event_id_text(raw: str, name: str) -> int:
    """An event id sent as text (Last-Event-ID, last_event_id)."""
    try:
        value = int(raw.strip())
    except ValueError:
        raise InvalidArgument(f"{name} must be an event id (a non-negative integer)") from None
    return after_event_id(value, name)


def _identifier(field: str, value: str) -> str:
    if not value:
        raise InvalidArgument(f"{field} is required")
    if not _ID_PATTERN.match(value):
        raise InvalidArgument(
            f"{field} must be 1 to 128 letters, digits or . _ : - and start with a letter or"
            f" digit; got {value!r:.60}"
        )
    return value
