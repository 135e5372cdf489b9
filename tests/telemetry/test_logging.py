from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from tracseq_kit import ConfigurationError
from tracseq_kit.telemetry import configure_logging
from tracseq_kit.telemetry._context import request_id_var


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_root() -> Iterator[None]:
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    root.handlers[:] = before
    root.setLevel(level)


def ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if getattr(h, "_tracseq_handler", False)]


def test_configuring_twice_keeps_one_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(service="a", stream=first)
    configure_logging(service="a", stream=second)
    assert len(ours()) == 1
    logging.getLogger("x").warning("once")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


def test_json_line_fields() -> None:
    stream = io.StringIO()
    configure_logging(service="samples", level="DEBUG", fmt="json", stream=stream)
    tracer = TracerProvider().get_tracer("t")
    token = request_id_var.set("rid-1")
    try:
        with tracer.start_as_current_span("work") as span:
            logging.getLogger("samples.db").debug("saved %d rows", 3, extra={"table": "samples"})
    finally:
        request_id_var.reset(token)
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    ctx = span.get_span_context()
    assert record["level"] == "DEBUG"
    assert record["logger"] == "samples.db"
    assert record["message"] == "saved 3 rows"
    assert record["service"] == "samples"
    assert record["request_id"] == "rid-1"
    assert record["trace_id"] == f"{ctx.trace_id:032x}"
    assert record["span_id"] == f"{ctx.span_id:016x}"
    assert record["table"] == "samples"
    assert record["timestamp"].endswith("+00:00")


def test_outside_a_request_ids_are_null_and_exceptions_are_kept() -> None:
    stream = io.StringIO()
    configure_logging(service="s", fmt="json", stream=stream)
    try:
        raise KeyError("sample 7")
    except KeyError:
        logging.getLogger("s").exception("lookup failed")
    record = json.loads(stream.getvalue())
    assert record["request_id"] is None and record["trace_id"] is None
    assert "Traceback" in record["exception"] and "sample 7" in record["exception"]


def test_auto_format_is_text_in_a_terminal_and_json_otherwise() -> None:
    tty, pipe = FakeTerminal(), io.StringIO()
    configure_logging(service="s", stream=tty)
    logging.getLogger("s").warning("hello %s", "you", extra={"sample": "S1"})
    configure_logging(service="s", stream=pipe)
    logging.getLogger("s").warning("hello")
    assert "WARNING" in tty.getvalue() and "hello you" in tty.getvalue()
    assert "sample=S1" in tty.getvalue()
    assert not tty.getvalue().startswith("{")
    assert json.loads(pipe.getvalue())["message"] == "hello"


def test_uvicorn_loggers_go_through_the_same_handler() -> None:
    stream = io.StringIO()
    logging.getLogger("uvicorn.error").addHandler(logging.StreamHandler(io.StringIO()))
    configure_logging(service="s", fmt="json", stream=stream)
    logging.getLogger("uvicorn.error").warning("from uvicorn")
    assert json.loads(stream.getvalue())["logger"] == "uvicorn.error"
    assert logging.getLogger("uvicorn.error").handlers == []


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"level": "LOUD"}, "LOUD"), ({"fmt": "xml"}, "xml")]
)
def test_bad_options_are_configuration_errors(kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        configure_logging(service="s", **kwargs)  # type: ignore[arg-type]
