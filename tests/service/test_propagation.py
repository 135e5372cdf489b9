"""Trace context propagated by the httpx hooks is continued by a chassis service."""

from __future__ import annotations

from typing import Any

import httpx
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracseq_kit.telemetry import trace_context_event_hooks


def test_httpx_hooks_continue_the_trace_in_the_called_service(live_server: Any) -> None:
    from tracseq_kit.service import create_service
    from tracseq_kit.settings import ServiceSettings

    server_spans = InMemorySpanExporter()
    server_provider = TracerProvider()
    server_provider.add_span_processor(SimpleSpanProcessor(server_spans))
    app = create_service(ServiceSettings(), tracer_provider=server_provider, configure_logs=False)

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    server = live_server(app)
    client_tracer = TracerProvider().get_tracer("client")
    with (
        httpx.Client(event_hooks=trace_context_event_hooks(asynchronous=False)) as client,
        client_tracer.start_as_current_span("caller") as caller,
    ):
        assert client.get(f"{server.url}/ping").status_code == 200
    (span,) = server_spans.get_finished_spans()
    assert span.context.trace_id == caller.get_span_context().trace_id
    assert span.parent is not None and span.parent.span_id == caller.get_span_context().span_id
