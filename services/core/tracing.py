"""The trace id and photo id of the work at hand, in context variables, so that every log
line written for a photo says which photo and which trace without each call passing them.

A trace id starts where a photo's work starts (UploadPhoto, or a job or event consumed
without one) and travels in the TRACE_HEADER of every broker message written on its behalf:
the outbox rows (jobs and events) and direct publishes take it from the context here."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

TRACE_HEADER = "x-thumbwire-trace"
# What a trace id a client or a message brings may look like: it goes into log lines as is.
_TRACE_PATTERN = re.compile(r"[0-9A-Za-z_.-]{1,64}")

_trace_id: ContextVar[str | None] = ContextVar("thumbwire_trace_id", default=None)
_photo_id: ContextVar[str | None] = ContextVar("thumbwire_photo_id", default=None)


def new_trace_id() -> str:
    return uuid.uuid4().hex


def trace_id() -> str | None:
    return _trace_id.get()


def photo_id() -> str | None:
    return _photo_id.get()


@contextlib.contextmanager
def traced(trace: str | None, photo: object | None = None) -> Iterator[str]:
    """Binds `trace` (a new one when None) and `photo` for the block; yields the trace id.
    Both are restored on exit, so a consumer's callback cannot leak them into the next."""
    trace = trace or new_trace_id()
    trace_token = _trace_id.set(trace)
    photo_token = _photo_id.set(None if photo is None else str(photo))
    try:
        yield trace
    finally:
        _photo_id.reset(photo_token)
        _trace_id.reset(trace_token)


def bind_photo(photo: object) -> None:
    """Names the photo of the current trace once it is known (an upload learns its id late);
    the enclosing `traced` block restores the previous value."""
    _photo_id.set(str(photo))


def trace_of(headers: Mapping[str, Any] | None) -> str | None:
    """The trace id a message carries, if any."""
    return valid_trace((headers or {}).get(TRACE_HEADER))


def valid_trace(value: object) -> str | None:
    """`value` if it is a well-formed trace id, else None (a new trace starts)."""
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    if isinstance(value, str) and _TRACE_PATTERN.fullmatch(value):
        return value
    return None


def with_trace(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """`headers` plus the current trace id, unless they carry one already."""
    merged = dict(headers or {})
    current = trace_id()
    if current and TRACE_HEADER not in merged:
        merged[TRACE_HEADER] = current
    return merged
