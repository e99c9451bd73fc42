"""Log lines carry the photo id and trace id of their context, as JSON or text; trace ids
pass into message headers and are never taken from a malformed header."""

from __future__ import annotations

import json
import logging

import pytest

from services.core import tracing
from services.core.config import ConfigError
from services.core.lifecycle import setup_logging
from services.core.log_format import handler_for


def render(log_format: str, message: str) -> str:
    handler = handler_for("svc", log_format)
    record = logging.LogRecord("thumbwire.test", logging.INFO, __file__, 1, message, (), None)
    for log_filter in handler.filters:
        log_filter.filter(record)  # type: ignore[union-attr]
    return handler.format(record)


def test_json_lines_carry_the_photo_and_trace_of_their_context() -> None:
    with tracing.traced("trace-1", "photo-1"):
        line = json.loads(render("json", "made thumbnails"))
    assert line["message"] == "made thumbnails"
    assert (line["service"], line["level"]) == ("svc", "info")
    assert (line["photo_id"], line["trace_id"]) == ("photo-1", "trace-1")


def test_outside_a_trace_lines_have_neither() -> None:
    line = json.loads(render("json", "idle"))
    assert "photo_id" not in line and "trace_id" not in line
    assert render("text", "idle").endswith("thumbwire.test: idle")


def test_text_lines_name_them_too() -> None:
    with tracing.traced("trace-2"):
        tracing.bind_photo("photo-2")
        line = render("text", "uploaded")
    assert line.endswith("uploaded [photo=photo-2 trace=trace-2]")
    assert tracing.photo_id() is None and tracing.trace_id() is None  # restored on exit


def test_the_current_trace_goes_into_headers_unless_they_carry_one() -> None:
    assert tracing.with_trace({"a": 1}) == {"a": 1}
    with tracing.traced("mine"):
        assert tracing.with_trace({"a": 1}) == {"a": 1, tracing.TRACE_HEADER: "mine"}
        assert tracing.with_trace({tracing.TRACE_HEADER: "theirs"}) == {
            tracing.TRACE_HEADER: "theirs"
        }


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc-123", "abc-123"), (b"abc", "abc"), ("has\nnewline", None), ("", None), (7, None)],
)
def test_a_trace_from_outside_is_taken_only_when_well_formed(
    value: object, expected: str | None
) -> None:
    assert tracing.trace_of({tracing.TRACE_HEADER: value}) == expected


def test_an_unknown_log_format_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="THUMBWIRE_LOG_FORMAT"):
        setup_logging("svc", "xml")
