from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider

from tracseq_kit.telemetry import inject_trace_context, trace_context_event_hooks


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=60
    )


def test_providers_are_installed_once_and_named_from_env() -> None:
    result = _run(
        "from opentelemetry import trace\n"
        "from tracseq_kit.telemetry import configure_telemetry\n"
        "a = configure_telemetry(service_name='arg')\n"
        "b = configure_telemetry(service_name='other')\n"
        "assert a is b\n"
        "assert trace.get_tracer_provider() is a.tracer_provider\n"
        "print(a.tracer_provider.resource.attributes['service.name'])\n",
        OTEL_SERVICE_NAME="from-env",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from-env"
    assert "Overriding" not in result.stderr


def test_console_exporter_prints_spans() -> None:
    result = _run(
        "from tracseq_kit.telemetry import configure_telemetry\n"
        "t = configure_telemetry(service_name='svc')\n"
        "with t.tracer_provider.get_tracer('x').start_as_current_span('hello'): pass\n",
        OTEL_TRACES_EXPORTER="console",
    )
    assert result.returncode == 0, result.stderr
    assert '"name": "hello"' in result.stdout


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("zipkinx", "ConfigurationError", "OTEL_TRACES_EXPORTER: unknown exporter 'zipkinx'"),
        ("otlp", "MissingDependencyError", "tracseq-kit[otlp]"),
    ],
)
def test_bad_exporter_choice_fails_clearly(value: str, error: str, message: str) -> None:
    # No exporter is visible through entry points, as without the otlp extra.
    result = _run(
        "import tracseq_kit.telemetry._tracing as t\n"
        "t.entry_points = lambda **kw: ()\n"
        "from tracseq_kit.telemetry import configure_telemetry\n"
        "try:\n"
        "    configure_telemetry()\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n",
        OTEL_TRACES_EXPORTER=value,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(error) and message in result.stdout


def test_otlp_over_http_is_configured_from_env() -> None:
    result = _run(
        "from tracseq_kit.telemetry import configure_telemetry\n"
        "t = configure_telemetry()\n"
        "p = t.tracer_provider._active_span_processor._span_processors[0]\n"
        "print(type(p.span_exporter).__module__, p.span_exporter._endpoint)\n",
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://collector.invalid:4318",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "http://collector.invalid:4318/v1/traces",
    ]


def test_inject_outside_a_span_adds_nothing() -> None:
    headers: dict[str, str] = {}
    inject_trace_context(headers)
    assert headers == {}


@pytest.mark.anyio
async def test_async_hooks_inject_traceparent() -> None:
    seen: dict[str, str] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(request.headers)
        return httpx.Response(204)

    tracer = TracerProvider().get_tracer("client")
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(handler),
        event_hooks=trace_context_event_hooks(asynchronous=True),
    ) as client:
        with tracer.start_as_current_span("caller") as caller:
            await client.get("http://upstream/x")
    trace_id = f"{caller.get_span_context().trace_id:032x}"
    assert seen["traceparent"].split("-")[1] == trace_id
