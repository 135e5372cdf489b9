"""The gateway traced: one SERVER span per proxied request that continues the caller's
trace, one CLIENT span per upstream attempt under it (so retries show), and the upstream
receives its attempt's span as its parent."""

from __future__ import annotations

import httpx
import pytest
from gateway_support import Upstream, config, serve
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tracseq_kit.asgi import TracingMiddleware
from tracseq_kit.gateway import Gateway
from tracseq_kit.gateway._cli import traced

pytestmark = pytest.mark.anyio

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_the_upstream_sees_the_gateway_span_as_its_parent(pair: list[Upstream]) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    routes = [{"prefix": "/api/templates", "upstream": "t", "rewrite": "/echo"}]
    gateway = Gateway(config({"t": [pair[0].address]}, routes), tracer_provider=provider)
    app = TracingMiddleware(gateway, tracer_provider=provider, excluded_paths=["/health"])
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:  # type: ignore[arg-type]
        r = await client.get("/api/templates/tpl-1", headers={"traceparent": CALLER})
        await client.get("/health")
    assert r.status_code == 200
    forwarded = [v for k, v in r.json()["headers"] if k == "traceparent"]
    client_span, span = exporter.get_finished_spans()
    assert span.kind is SpanKind.SERVER and span.name == "GET /api/templates"
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 200
    assert f"{span.context.trace_id:032x}" == CALLER.split("-")[1]  # the caller's trace
    assert span.parent is not None and f"{span.parent.span_id:016x}" == CALLER.split("-")[2]
    assert client_span.kind is SpanKind.CLIENT and client_span.name == "GET"
    assert client_span.parent is not None
    assert client_span.parent.span_id == span.context.span_id
    attrs = dict(client_span.attributes or {})
    assert attrs["server.port"] == pair[0].port
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.full"] == f"http://{pair[0].address}/echo/tpl-1"
    assert forwarded == [
        f"00-{client_span.context.trace_id:032x}-{client_span.context.span_id:016x}-01"
    ]


async def test_each_upstream_attempt_is_a_client_span(pair: list[Upstream]) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    dead = Upstream("dead")  # never started: connection refused
    gateway = Gateway(
        config({"t": [dead.address, pair[0].address]}, [{"prefix": "/", "upstream": "t"}]),
        tracer_provider=provider,
    )
    gateway.pools["t"].balancer = "round_robin"
    app = TracingMiddleware(gateway, tracer_provider=provider)
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:  # type: ignore[arg-type]
        gateway.pools["t"].instances[0].healthy = True  # between two health checks
        statuses = [(await client.get("/echo")).status_code for _ in range(4)]
    assert statuses == [200] * 4
    spans = exporter.get_finished_spans()
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    retried = [s for s in servers if len([c for c in spans if _child(c, s)]) == 2]
    assert retried, "a request that met the dead instance was retried"
    failed, succeeded = sorted(
        (c for c in spans if _child(c, retried[0])), key=lambda c: c.start_time or 0
    )
    assert dict(failed.attributes or {})["error.type"] == "connect_error"
    assert dict(failed.attributes or {})["server.port"] == dead.port
    assert dict(succeeded.attributes or {})["http.request.resend_count"] == 1
    assert dict(succeeded.attributes or {})["http.response.status_code"] == 200


def _child(span: object, parent: object) -> bool:
    return (
        getattr(span, "kind", None) is SpanKind.CLIENT
        and span.parent is not None  # type: ignore[attr-defined]
        and span.parent.span_id == parent.context.span_id  # type: ignore[attr-defined]
    )


def test_tracing_is_on_only_when_an_exporter_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = Gateway(config({"t": ["127.0.0.1:1"]}, [{"prefix": "/", "upstream": "t"}]))
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    assert traced(gateway) is gateway
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert traced(gateway) is gateway
    installed: list[str] = []  # not the process-wide providers, in a test
    monkeypatch.setattr(
        "tracseq_kit.telemetry.configure_telemetry",
        lambda *, service_name: installed.append(service_name),
    )
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    wrapped = traced(gateway)
    assert installed == ["gateway"]
    assert isinstance(wrapped, TracingMiddleware) and wrapped.app is gateway
