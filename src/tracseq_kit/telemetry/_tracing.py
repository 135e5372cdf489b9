"""OpenTelemetry providers from the standard ``OTEL_*`` variables, and HTTP propagation.

The SDK already reads most variables itself (``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` in ``Resource.create``, ``OTEL_TRACES_SAMPLER``,
``OTEL_BSP_*``, and every ``OTEL_EXPORTER_OTLP_*`` in the OTLP exporters). What is left is
choosing exporters by ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``; exporters are
looked up through the same entry points the OpenTelemetry distro uses, so any installed
exporter works. Unlike the specification's default (``otlp``) the kit defaults to
``none``: a service must not fail or block because no collector is running.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal, overload

from opentelemetry import metrics, propagate, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)

from tracseq_kit._exceptions import ConfigurationError, MissingDependencyError

_lock = threading.Lock()
_installed: Telemetry | None = None


@dataclass(frozen=True, slots=True)
class Telemetry:
    """The tracer and meter providers the process uses (see :func:`configure_telemetry`)."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider


def configure_telemetry(*, service_name: str | None = None) -> Telemetry:
    """Install global tracer and meter providers configured from ``OTEL_*`` variables.

    ``OTEL_SERVICE_NAME`` wins over ``service_name``. ``OTEL_TRACES_EXPORTER`` and
    ``OTEL_METRICS_EXPORTER`` take a comma-separated list of ``none`` (default),
    ``console``, ``otlp`` (HTTP/protobuf by default, needs ``pip install
    'tracseq-kit[otlp]'``; ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc`` needs
    ``opentelemetry-exporter-otlp-proto-grpc``) or any exporter registered under the
    OpenTelemetry entry points. Endpoint, headers and timeouts are read by the exporter
    itself from ``OTEL_EXPORTER_OTLP_*``. Called twice, it returns the
    providers installed the first time instead of installing new ones.

    Raises ``ConfigurationError`` for an unknown exporter name and
    ``MissingDependencyError`` when ``otlp`` is asked for without its package.
    """
    global _installed
    with _lock:
        if _installed is not None:
            return _installed
        attributes = {SERVICE_NAME: service_name} if service_name else {}
        # Resource.create merges OTEL_RESOURCE_ATTRIBUTES; the variable must win over the
        # argument, so OTEL_SERVICE_NAME is merged again on top.
        resource = Resource.create(attributes)
        if os.environ.get("OTEL_SERVICE_NAME"):
            resource = resource.merge(Resource({SERVICE_NAME: os.environ["OTEL_SERVICE_NAME"]}))
        tracer_provider = TracerProvider(resource=resource)
        for name in _exporter_names("OTEL_TRACES_EXPORTER"):
            exporter = _load_exporter("opentelemetry_traces_exporter", name)()
            processor = SimpleSpanProcessor if name == "console" else BatchSpanProcessor
            tracer_provider.add_span_processor(processor(exporter))
        readers: list[MetricReader] = [
            PeriodicExportingMetricReader(_load_exporter("opentelemetry_metrics_exporter", n)())
            for n in _exporter_names("OTEL_METRICS_EXPORTER")
        ]
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        _installed = Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
        return _installed


def _exporter_names(variable: str) -> list[str]:
    raw = os.environ.get(variable, "none")
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    return [] if "none" in names else names


def _otlp_entry_point(signal: str) -> tuple[str, str]:
    protocol = (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "grpc":
        return "otlp_proto_grpc", "opentelemetry-exporter-otlp-proto-grpc"
    if protocol == "http/protobuf":
        return "otlp_proto_http", "opentelemetry-exporter-otlp-proto-http"
    raise ConfigurationError(
        f"OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol {protocol!r}; use http/protobuf or grpc"
    )


def _load_exporter(group: str, name: str) -> Callable[[], Any]:
    package = None
    if name == "otlp":  # the protocol variable picks the transport, as the spec says
        name, package = _otlp_entry_point("TRACES" if "traces" in group else "METRICS")
    found = entry_points(group=group, name=name)
    if not found:
        if package is not None:
            raise MissingDependencyError(package, extra="otlp", purpose="The OTLP exporter")
        variable = "OTEL_TRACES_EXPORTER" if "traces" in group else "OTEL_METRICS_EXPORTER"
        raise ConfigurationError(
            f"{variable}: unknown exporter {name!r}; use none, console or otlp"
        )
    factory: Callable[[], SpanExporter] = next(iter(found)).load()
    return factory


# -- HTTP client propagation ------------------------------------------------------------


def inject_trace_context(headers: Any) -> None:
    """Write the current trace context (``traceparent``, ``tracestate``, baggage) into
    ``headers``, any mutable mapping of header names to values (e.g. ``httpx.Headers``).

    Uses the globally configured propagators (``OTEL_PROPAGATORS``; W3C by default).
    Does nothing outside a span.
    """
    propagate.inject(headers)


def _sync_hook(request: Any) -> None:
    propagate.inject(request.headers)


async def _async_hook(request: Any) -> None:
    propagate.inject(request.headers)


@overload
def trace_context_event_hooks(
    *, asynchronous: Literal[True]
) -> dict[str, list[Callable[[Any], Awaitable[None]]]]: ...
@overload
def trace_context_event_hooks(
    *, asynchronous: Literal[False]
) -> dict[str, list[Callable[[Any], None]]]: ...
def trace_context_event_hooks(*, asynchronous: bool) -> dict[str, list[Any]]:
    """Return ``event_hooks`` for an httpx client that propagate the current trace context.

    ``httpx.AsyncClient(event_hooks=trace_context_event_hooks(asynchronous=True))`` (or
    ``asynchronous=False`` for ``httpx.Client``) adds ``traceparent`` to every request
    sent while a span is current, so the called service continues the same trace.
    """
    return {"request": [_async_hook if asynchronous else _sync_hook]}
