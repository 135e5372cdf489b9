"""Prometheus metrics of the gateway, registered once per registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["GatewayMetrics", "gateway_metrics"]


@dataclass(frozen=True)
class GatewayMetrics:
    """Per-route and per-upstream counters and latencies."""

    requests: Counter
    duration: Histogram
    upstream: Counter
    retries: Counter


_cache: dict[int, tuple[CollectorRegistry, GatewayMetrics]] = {}


def gateway_metrics(registry: CollectorRegistry) -> GatewayMetrics:
    """The gateway metrics on ``registry`` (created on first use)."""
    hit = _cache.get(id(registry))
    if hit is not None and hit[0] is registry:
        return hit[1]
    metrics = GatewayMetrics(
        requests=Counter(
            "tracseq_gateway_requests",
            "Requests answered by the gateway",
            ["route", "status"],
            registry=registry,
        ),
        duration=Histogram(
            "tracseq_gateway_request_duration_seconds",
            "Time from request start to response head, per route",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        ),
        upstream=Counter(
            "tracseq_gateway_upstream_requests",
            "Exchanges with upstream instances by outcome",
            ["upstream", "instance", "outcome"],
            registry=registry,
        ),
        retries=Counter(
            "tracseq_gateway_retries",
            "Requests retried on another instance",
            ["upstream"],
            registry=registry,
        ),
    )
    _cache[id(registry)] = (registry, metrics)
    return metrics
