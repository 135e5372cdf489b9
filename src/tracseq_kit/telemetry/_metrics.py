"""The process-wide Prometheus registry shared by every kit module.

prometheus-client was chosen over the OpenTelemetry Prometheus exporter because its
counters and histograms cost well under a microsecond per update and it supports
collectors that read state only at scrape time, which keeps hot paths (breakers,
limiters) free of metric work.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

_registry = CollectorRegistry(auto_describe=True)


def metrics_registry() -> CollectorRegistry:
    """Return the registry that ``/metrics`` serves and kit modules register on."""
    return _registry


def reset_metrics_registry() -> CollectorRegistry:
    """Replace the shared registry with an empty one and return it (for tests)."""
    global _registry
    _registry = CollectorRegistry(auto_describe=True)
    return _registry
