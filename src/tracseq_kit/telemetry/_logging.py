"""Structured logs: JSON lines for machines, one readable line per record in a terminal.

A small :class:`logging.Formatter` subclass rather than structlog or python-json-logger:
the kit needs one fixed set of fields plus the record's ``extra`` keys, stays on the
standard :mod:`logging` API every library already logs through, and adds no dependency.
Context (request id, trace id, span id) is captured by a filter when the record is
created, so it stays right even if a handler formats the record later on another thread.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from opentelemetry import trace

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.telemetry._context import request_id_var

LogFormat = Literal["auto", "json", "text"]

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "service", "request_id", "trace_id", "span_id", "taskName"}
)
_MARK = "_tracseq_handler"
# One encoder for all records: json.dumps with options builds a new encoder per call.
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


class _ContextFilter(logging.Filter):
    """Stamp service name, request id and the current span's ids onto each record."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = request_id_var.get()
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            record.trace_id = format(ctx.trace_id, "032x")
            record.span_id = format(ctx.span_id, "016x")
        else:
            record.trace_id = record.span_id = None
        return True


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line.

    Fields: ``timestamp`` (RFC 3339, UTC), ``level``, ``logger``, ``message``, ``service``,
    ``request_id``, ``trace_id``, ``span_id``, every ``extra=`` key, and ``exception``
    (the formatted traceback) when the record carries one. Values that JSON cannot encode
    are written with ``str()``.
    """

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": getattr(record, "service", None),
            "request_id": getattr(record, "request_id", None),
            "trace_id": getattr(record, "trace_id", None),
            "span_id": getattr(record, "span_id", None),
        }
        attrs = record.__dict__
        for key in attrs.keys() - _STANDARD_ATTRS:
            doc[key] = attrs[key]
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        return _ENCODER.encode(doc)


class TextFormatter(logging.Formatter):
    """Format a record as one human-readable line (for terminals)."""

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(
            f"{k}={v}"
            for k in ("request_id", "trace_id")
            if (v := getattr(record, k, None)) is not None
        )
        extras = " ".join(
            f"{k}={v}" for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS
        )
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        tail = " ".join(part for part in (extras, ids) if part)
        if tail:
            line = f"{line}  [{tail}]"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def configure_logging(
    *,
    service: str,
    level: int | str = "INFO",
    fmt: LogFormat = "auto",
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record to ``stream`` (default: stdout) in the chosen format.

    ``fmt="auto"`` writes JSON lines unless ``stream`` is a terminal. Idempotent: the
    handler installed by an earlier call is replaced, never duplicated; handlers other
    code installed are left alone. uvicorn's loggers are made to propagate to the root
    logger at the root's level, so their records get the same format and threshold.
    Returns the installed handler.
    Raises ``ConfigurationError`` for an unknown level or format.
    """
    if fmt not in ("auto", "json", "text"):
        raise ConfigurationError(f"log format must be 'auto', 'json' or 'text', not {fmt!r}")
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ConfigurationError(f"unknown log level {level!r}")
    out = stream if stream is not None else sys.stdout
    if fmt == "auto":
        fmt = "text" if _isatty(out) else "json"
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter(service))
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
        uv.disabled = False  # a dictConfig(disable_existing_loggers=True) mutes them
        uv.setLevel(logging.NOTSET)  # the root's level governs, as for every other logger
    return handler


_last_second: tuple[int, str] = (-1, "")


def _timestamp(record: logging.LogRecord) -> str:
    """RFC 3339 UTC with milliseconds; the part up to the second is reused within a second."""
    global _last_second
    second = int(record.created)
    cached_second, prefix = _last_second
    if second != cached_second:
        prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _last_second = (second, prefix)
    millis = int((record.created - second) * 1000)
    return f"{prefix}.{millis:03d}+00:00"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
