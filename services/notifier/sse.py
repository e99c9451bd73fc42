"""Server-sent events framing (the WHATWG `text/event-stream` format)."""

from __future__ import annotations

import json
from typing import Any

CONTENT_TYPE = "text/event-stream"
# What a browser's EventSource waits before reconnecting after the stream ends.
RECONNECT_DELAY_MS = 2000


def event_frame(event_id: int, event_type: str, data: dict[str, Any]) -> bytes:
    """One event: its id (what Last-Event-ID sends back), its type and one line of JSON."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event_id}\nevent: {event_type}\ndata: {payload}\n\n".encode()


def comment_frame(text: str) -> bytes:
    """A comment: ignored by clients, it keeps proxies and dead-peer detection busy."""
    return f": {text}\n\n".encode()


def retry_frame(delay_ms: int = RECONNECT_DELAY_MS) -> bytes:
    return f"retry: {delay_ms}\n\n".encode()
