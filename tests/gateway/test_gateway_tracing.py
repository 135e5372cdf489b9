"""The gateway traced: one SERVER span per proxied request that continues the caller's
trace, and the upstream receives that span as its parent."""

from __future__ import annotations

import httpx
import pytest
from gateway_support import Upstream, config, serve
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tracseq_kit.gateway import Gateway
from tracseq_kit.gateway._cli import traced
from tracseq_kit.service import TracingMiddleware

pytestmark = pytest.mark.anyio

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_the_upstream_sees_the_gateway_span_as_its_parent(pair: list[Upstream]) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    routes = [{"prefix": "/api/templates", "upstream": "t", "rewrite": "/echo"}]
    gateway = Gateway(config({"t": [pair[0].address]}, routes))
    app = TracingMiddleware(gateway, tracer_provider=provider, excluded_paths=["/health"])
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:  # type: ignore[arg-type]
        r = await client.get("/api/templates/tpl-1", headers={"traceparent": CALLER})
        await client.get("/health")
    assert r.status_code == 200
    forwarded = [v for k, v in r.json()["headers"] if k == "traceparent"]
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.SERVER and span.name == "GET /api/templates"
    assert span.attributes is not None and span.attributes["http.response.status_code"] == 200
    assert f"{span.context.trace_id:032x}" == CALLER.split("-")[1]  # the caller's trace
    assert span.parent is not None and f"{span.parent.span_id:016x}" == CALLER.split("-")[2]
    assert forwarded == [f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"]


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
