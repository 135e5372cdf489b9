"""Telemetry: the shared metrics registry (and, with the chassis, logging and tracing).

Modules that expose metrics (breakers, limiters, publishers) register collectors on
:func:`metrics_registry`; the service chassis serves it as Prometheus text at ``/metrics``.
"""

from tracseq_kit.telemetry._metrics import metrics_registry, reset_metrics_registry

__all__ = ["metrics_registry", "reset_metrics_registry"]
