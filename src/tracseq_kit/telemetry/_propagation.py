"""W3C trace context in Kafka headers (lists of ``(name, bytes)``)."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import baggage, propagate, trace
from opentelemetry import context as otel_context
from opentelemetry.propagators.textmap import Getter

__all__ = ["extract_kafka_context", "kafka_trace_headers"]


def kafka_trace_headers() -> list[tuple[str, bytes]]:
    """The current trace context (``traceparent``, ``tracestate``) as Kafka headers.

    Empty outside a span. Uses the configured propagators (W3C by default).
    """
    if not trace.get_current_span().get_span_context().is_valid and not baggage.get_all():
        return []  # the common case on hot paths: nothing to propagate
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()]


class _HeaderGetter(Getter[Sequence[tuple[str, bytes]]]):
    def get(self, carrier: Sequence[tuple[str, bytes]], key: str) -> list[str] | None:
        values = [v.decode("latin-1") for k, v in carrier if k.lower() == key]
        return values or None

    def keys(self, carrier: Sequence[tuple[str, bytes]]) -> list[str]:
        return [k for k, _ in carrier]


def extract_kafka_context(headers: Sequence[tuple[str, bytes]]) -> otel_context.Context:
    """The trace context carried by Kafka ``headers`` (to attach or start spans in)."""
    return propagate.extract(headers, getter=_HeaderGetter())
