"""Telemetry: metrics registry, structured logs, OpenTelemetry setup, request-id context.

- Metrics: kit modules get instruments with :func:`counter`, :func:`gauge` and
  :func:`histogram` (get-or-create on the shared :func:`metrics_registry`); scrape-time
  collectors are registered with ``metrics_registry().register(collector)``. The service
  chassis serves the registry as Prometheus text at ``/metrics`` (:func:`render_metrics`).
- Logs: :func:`configure_logging` installs JSON-lines (or terminal) output with the
  service name, request id, trace id and span id on every record.
- Tracing: :func:`configure_telemetry` installs tracer and meter providers from the
  standard ``OTEL_*`` variables; :func:`trace_context_event_hooks` and
  :func:`inject_trace_context` propagate the current trace to outgoing HTTP requests;
  :func:`kafka_trace_headers` and :func:`extract_kafka_context` carry it through Kafka.
"""

from tracseq_kit.telemetry._context import current_request_id
from tracseq_kit.telemetry._logging import (
    JsonFormatter,
    TextFormatter,
    configure_logging,
)
from tracseq_kit.telemetry._metrics import (
    DURATION_BUCKETS,
    counter,
    gauge,
    histogram,
    metrics_registry,
    render_metrics,
    reset_metrics_registry,
)
from tracseq_kit.telemetry._propagation import extract_kafka_context, kafka_trace_headers
from tracseq_kit.telemetry._tracing import (
    Telemetry,
    configure_telemetry,
    inject_trace_context,
    trace_context_event_hooks,
)

__all__ = [
    "DURATION_BUCKETS",
    "JsonFormatter",
    "Telemetry",
    "TextFormatter",
    "configure_logging",
    "configure_telemetry",
    "counter",
    "current_request_id",
    "extract_kafka_context",
    "gauge",
    "histogram",
    "inject_trace_context",
    "kafka_trace_headers",
    "metrics_registry",
    "render_metrics",
    "reset_metrics_registry",
    "trace_context_event_hooks",
]
