"""Log lines as text for a terminal or as one JSON object a line for a collector, both
carrying the current photo id and trace id (services.core.tracing)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from services.core import tracing

FORMATS = ("text", "json")
_TEXT = "%(asctime)s {service} %(levelname)s %(name)s: %(message)s%(context)s"


class ContextFilter(logging.Filter):
    """Adds `photo_id` and `trace_id` from the context to every record (None outside one),
    and `context`, their text form."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.photo_id = tracing.photo_id()
        record.trace_id = tracing.trace_id()
        parts = [f"photo={record.photo_id}"] if record.photo_id else []
        parts += [f"trace={record.trace_id}"] if record.trace_id else []
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("photo_id", "trace_id"):
            value = getattr(record, key, None)
            if value:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def handler_for(service: str, log_format: str) -> logging.Handler:
    """A stderr handler writing `log_format` ("text" or "json"); ValueError for another."""
    if log_format not in FORMATS:
        raise ValueError(f"THUMBWIRE_LOG_FORMAT must be one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(_TEXT.format(service=service)))
    return handler
