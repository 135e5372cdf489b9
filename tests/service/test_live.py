"""The chassis through a real uvicorn server on loopback (the issue's done-when list)."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from tracseq_kit.service import Resource, create_service
from tracseq_kit.settings import ServiceSettings
from tracseq_kit.telemetry import configure_logging

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"


class Sample(BaseModel):
    name: str
    volume_ul: float


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging(service="samples", level="INFO", fmt="json", stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def build_app(tracer_provider: TracerProvider, **settings: Any) -> FastAPI:
    app = create_service(
        ServiceSettings(service_name="samples", **{"access_log": True, **settings}),
        tracer_provider=tracer_provider,
        configure_logs=False,
    )

    @app.get("/items/{item_id}")
    async def get_item(item_id: int) -> dict[str, int]:
        logging.getLogger("samples.handler").info("looking up item %d", item_id)
        return {"id": item_id}

    @app.post("/samples", status_code=201)
    async def create_sample(sample: Sample) -> Sample:
        return sample

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret connection string postgres://u:hunter2@db")

    return app


def test_traceparent_reaches_log_line_and_span(
    live_server: Any,
    tracer_provider: TracerProvider,
    spans: InMemorySpanExporter,
    log_stream: io.StringIO,
) -> None:
    server = live_server(build_app(tracer_provider))
    response = httpx.get(f"{server.url}/items/7", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    request_id = response.headers["x-request-id"]

    (span,) = [s for s in spans.get_finished_spans() if s.name.startswith("GET")]
    assert span.name == "GET /items/{item_id}"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_SPAN_ID
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/items/{item_id}"
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["http.request.method"] == "GET"

    access = [r for r in log_lines(log_stream) if r["logger"] == "tracseq_kit.access"]
    handler = [r for r in log_lines(log_stream) if r["logger"] == "samples.handler"]
    assert len(access) == 1 and len(handler) == 1
    for record in (access[0], handler[0]):
        assert record["trace_id"] == TRACE_ID
        assert record["span_id"] == format(span.context.span_id, "016x")
        assert record["request_id"] == request_id
        assert record["service"] == "samples"
    assert access[0]["http.response.status_code"] == 200
    assert access[0]["http.route"] == "/items/{item_id}"


def _histogram_count(text: str, route: str, status: str) -> float:
    for family in text_string_to_metric_families(text):
        if family.name != "http_server_request_duration_seconds":
            continue
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name.endswith("_count")
                and labels["http_route"] == route
                and labels["http_response_status_code"] == status
            ):
                return sample.value
    return 0.0


def test_metrics_count_the_requests_just_made(
    live_server: Any, tracer_provider: TracerProvider
) -> None:
    server = live_server(build_app(tracer_provider))
    with httpx.Client(base_url=server.url) as client:
        for item in (1, 2, 3):
            assert client.get(f"/items/{item}").status_code == 200
        assert client.get("/nowhere").status_code == 404
        metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert _histogram_count(metrics.text, "/items/{item_id}", "200") == 3
    assert _histogram_count(metrics.text, "", "404") == 1
    assert "http_server_active_requests" in metrics.text


def test_handler_exception_is_problem_500_without_traceback(
    live_server: Any, tracer_provider: TracerProvider, log_stream: io.StringIO
) -> None:
    server = live_server(build_app(tracer_provider))
    response = httpx.get(f"{server.url}/boom", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-42"
    body = response.json()
    assert body["status"] == 500
    assert body["request_id"] == "req-42"
    assert "Traceback" not in response.text and "hunter2" not in response.text
    errors = [r for r in log_lines(log_stream) if r["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "req-42"
    assert "Traceback" in errors[0]["exception"] and "hunter2" in errors[0]["exception"]
    access = [r for r in log_lines(log_stream) if r["logger"] == "tracseq_kit.access"]
    assert access[0]["http.response.status_code"] == 500


def test_malformed_json_is_a_clear_400(live_server: Any, tracer_provider: TracerProvider) -> None:
    server = live_server(build_app(tracer_provider))
    response = httpx.post(
        f"{server.url}/samples",
        content=b'{"name": "S1", "volume_ul": ',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert "not valid JSON" in body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]


def test_validation_error_is_422_with_field_paths(
    live_server: Any, tracer_provider: TracerProvider
) -> None:
    server = live_server(build_app(tracer_provider))
    response = httpx.post(f"{server.url}/samples", json={"name": "S1", "volume_ul": "lots"})
    assert response.status_code == 422
    body = response.json()
    assert [e["field"] for e in body["errors"]] == ["body.volume_ul"]
    assert "body.volume_ul" in body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]


def test_unknown_route_and_wrong_method_are_problems(
    live_server: Any, tracer_provider: TracerProvider
) -> None:
    server = live_server(build_app(tracer_provider))
    with httpx.Client(base_url=server.url) as client:
        missing = client.get("/nope")
        wrong = client.delete("/items/1")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["detail"] == "Nothing is served at /nope."
    assert wrong.status_code == 405
    assert wrong.headers["content-type"] == "application/problem+json"
    assert "GET" in wrong.headers["allow"]


def test_oversized_bodies_are_413_by_length_and_while_streaming(
    live_server: Any, tracer_provider: TracerProvider
) -> None:
    server = live_server(build_app(tracer_provider, max_body_bytes=64))
    declared = httpx.post(f"{server.url}/samples", json={"name": "x" * 100, "volume_ul": 1})
    assert declared.status_code == 413
    assert declared.headers["content-type"] == "application/problem+json"
    assert "64 bytes" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(10):
            yield b"x" * 20
        yield b'", "volume_ul": 1}'

    streamed = httpx.post(
        f"{server.url}/samples", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == "application/problem+json"
    assert streamed.json()["request_id"] == streamed.headers["x-request-id"]


def test_graceful_shutdown_lets_in_flight_request_finish(
    live_server: Any, tracer_provider: TracerProvider
) -> None:
    events: list[str] = []
    entered = threading.Event()
    release = threading.Event()

    def tracked(name: str) -> Resource:
        @asynccontextmanager
        async def open_() -> AsyncIterator[str]:
            events.append(f"open {name}")
            yield name
            events.append(f"close {name}")

        return Resource(name, open_)

    app = create_service(
        ServiceSettings(service_name="slow", shutdown_timeout=5),
        resources=[tracked("postgres"), tracked("redis"), tracked("kafka")],
        tracer_provider=tracer_provider,
        configure_logs=False,
    )

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        entered.set()
        await anyio.to_thread.run_sync(release.wait, 10)
        events.append("request finished")
        return {"resources": ",".join(app.state.resources)}

    server = live_server(app)
    result: dict[str, Any] = {}

    def call() -> None:
        result["response"] = httpx.get(f"{server.url}/slow", timeout=10)

    caller = threading.Thread(target=call)
    caller.start()
    assert entered.wait(5)
    server.server.should_exit = True  # what SIGTERM does
    # New connections are refused once the listener closes, while the request is held.
    deadline = threading.Event()
    for _ in range(200):
        try:
            httpx.get(f"{server.url}/items", timeout=0.2)
        except httpx.ConnectError:
            break
        deadline.wait(0.01)
    else:
        pytest.fail("server kept accepting connections during shutdown")
    assert "close kafka" not in events
    release.set()
    caller.join(10)
    server.thread.join(10)

    response = result["response"]
    assert response.status_code == 200
    assert response.json() == {"resources": "postgres,redis,kafka"}
    assert events == [
        "open postgres",
        "open redis",
        "open kafka",
        "request finished",
        "close kafka",
        "close redis",
        "close postgres",
    ]
