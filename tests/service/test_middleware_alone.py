"""Each middleware in front of a bare ASGI app or a plain Starlette app, no chassis."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tracseq_kit.asgi import ProblemDetailsMiddleware, RequestIdMiddleware, TracingMiddleware
from tracseq_kit.service import (
    AccessLogMiddleware,
    MetricsEndpoint,
    MetricsMiddleware,
    install_exception_handlers,
)
from tracseq_kit.telemetry import configure_logging

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


async def crash(scope: Any, receive: Any, send: Any) -> None:
    raise ValueError("password=hunter2")


async def current_ids(scope: Any, receive: Any, send: Any) -> None:
    ctx = trace.get_current_span().get_span_context()
    body = f"{ctx.trace_id:032x} {ctx.span_id:016x} {int(ctx.trace_flags)}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.anyio
async def test_problem_details_hides_the_exception_and_logs_it(
    asgi_call: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = RequestIdMiddleware(ProblemDetailsMiddleware(crash))
    with caplog.at_level(logging.ERROR, logger="tracseq_kit.service"):
        result = await asgi_call(app, headers=[("x-request-id", "r1")])
    assert result.status == 500
    assert result.headers["content-type"] == "application/problem+json"
    assert result.json()["request_id"] == "r1"
    assert b"hunter2" not in result.body
    (record,) = caplog.records
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


@pytest.mark.anyio
async def test_problem_details_reraises_once_the_response_started(asgi_call: Any) -> None:
    async def half(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("mid-stream")

    with pytest.raises(RuntimeError, match="mid-stream"):
        await asgi_call(ProblemDetailsMiddleware(half))


@pytest.mark.anyio
async def test_id_only_span_continues_the_callers_trace_without_processors(
    asgi_call: Any,
) -> None:
    app = TracingMiddleware(current_ids, tracer_provider=TracerProvider())
    result = await asgi_call(app, headers=[("traceparent", TRACEPARENT)])
    trace_id, span_id, flags = result.body.decode().split()
    assert trace_id == TRACE_ID
    assert span_id not in ("b7ad6b7169203331", "0" * 16)
    assert flags == "1"
    fresh = (await asgi_call(app)).body.decode().split()
    assert fresh[0] != TRACE_ID and int(fresh[0], 16) != 0


@pytest.mark.anyio
async def test_recorded_span_for_an_exception_is_an_error(asgi_call: Any) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = ProblemDetailsMiddleware(TracingMiddleware(crash, tracer_provider=provider))
    result = await asgi_call(app, method="POST", path="/x", headers=[("traceparent", TRACEPARENT)])
    assert result.status == 500
    (span,) = spans.get_finished_spans()
    assert span.name == "POST"  # no router, so no route
    assert span.status.status_code == trace.StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "ValueError"
    assert f"{span.context.trace_id:032x}" == TRACE_ID


def _starlette_app() -> Starlette:
    async def item(request: Any) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["item_id"])

    return Starlette(routes=[Route("/items/{item_id}", item)])


@pytest.mark.anyio
async def test_metrics_middleware_on_plain_starlette_uses_route_templates(asgi_call: Any) -> None:
    registry = CollectorRegistry()
    app = MetricsMiddleware(_starlette_app(), registry=registry)
    for item in ("a", "b"):
        assert (await asgi_call(app, path=f"/items/{item}")).status == 200
    assert (await asgi_call(app, path="/missing")).status == 404
    text = (await asgi_call(MetricsEndpoint(registry=registry), path="/metrics")).body.decode()
    assert (
        'http_server_request_duration_seconds_count{http_request_method="GET",'
        'http_response_status_code="200",http_route="/items/{item_id}"} 2.0'
    ) in text
    assert (
        'http_server_request_duration_seconds_count{http_request_method="GET",'
        'http_response_status_code="404",http_route=""} 1.0'
    ) in text
    assert 'http_server_active_requests{http_request_method="GET"} 0.0' in text


@pytest.mark.anyio
async def test_exception_escaping_metrics_counts_as_500(asgi_call: Any) -> None:
    registry = CollectorRegistry()
    app = ProblemDetailsMiddleware(MetricsMiddleware(crash, registry=registry))
    await asgi_call(app)
    text = (await asgi_call(MetricsEndpoint(registry=registry))).body.decode()
    assert 'http_response_status_code="500"' in text


@pytest.mark.anyio
async def test_access_log_line(asgi_call: Any) -> None:
    stream = io.StringIO()
    handler = configure_logging(service="alone", fmt="json", stream=stream)
    try:
        app = RequestIdMiddleware(AccessLogMiddleware(_starlette_app(), excluded_paths=["/skip"]))
        await asgi_call(app, path="/items/9", headers=[("x-request-id", "abc")])
        await asgi_call(app, path="/skip")
    finally:
        logging.getLogger().removeHandler(handler)
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert line["message"] == "GET /items/9 200"
    assert line["http.route"] == "/items/{item_id}"
    assert line["request_id"] == "abc"
    assert line["service"] == "alone"
    assert line["duration_ms"] >= 0


@pytest.mark.anyio
async def test_exception_handlers_on_plain_starlette(asgi_call: Any) -> None:
    app = _starlette_app()
    install_exception_handlers(app)
    result = await asgi_call(RequestIdMiddleware(app), path="/nope")
    assert result.status == 404
    assert result.headers["content-type"] == "application/problem+json"
    assert result.json()["request_id"] == result.headers["x-request-id"]
