"""Prometheus metrics of the gateway, read from plain counters at scrape time.

The hot path only bumps integers in :class:`GatewayStats`; one collector per
registry turns the stats of every live gateway into metric families when
``/metrics`` is scraped. prometheus-client's ``labels()``/``inc()`` would cost
several microseconds per request (measured), a sizeable share of a proxied request.
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

if TYPE_CHECKING:
    from tracseq_kit.gateway._pool import UpstreamPool

__all__ = ["BUCKETS", "GatewayStats", "register_stats"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class _Latency:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0


@dataclass(eq=False)
class GatewayStats:
    """Counters the gateway bumps per request; turned into metrics on scrape."""

    pools: dict[str, UpstreamPool] = field(default_factory=dict)
    responses: dict[tuple[str, int], int] = field(default_factory=dict)
    latency: dict[str, _Latency] = field(default_factory=dict)
    upstream_failures: dict[tuple[str, str, str], int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)

    def observe(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request of ``route``."""
        key = (route, status)
        self.responses[key] = self.responses.get(key, 0) + 1
        lat = self.latency.get(route)
        if lat is None:
            lat = self.latency[route] = _Latency()
        lat.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        lat.total += seconds

    def route_totals(self) -> dict[str, int]:
        """Requests per route (all statuses)."""
        out: dict[str, int] = {}
        for (route, _), n in self.responses.items():
            out[route] = out.get(route, 0) + n
        return out

    def collect(self) -> Iterator[Metric]:
        """Metric families of these stats."""
        requests = CounterMetricFamily(
            "tracseq_gateway_requests",
            "Requests answered by the gateway",
            labels=["route", "status"],
        )
        for (route, status), n in sorted(self.responses.items()):
            requests.add_metric([route, str(status)], n)
        yield requests
        duration = HistogramMetricFamily(
            "tracseq_gateway_request_duration_seconds",
            "Time from request start to the end of the response, per route",
            labels=["route"],
        )
        for route, lat in sorted(self.latency.items()):
            cumulative, buckets = 0, []
            for bound, n in zip((*BUCKETS, float("inf")), lat.counts, strict=True):
                cumulative += n
                buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
            duration.add_metric([route], buckets, lat.total)
        yield duration
        upstream = CounterMetricFamily(
            "tracseq_gateway_upstream_requests",
            "Exchanges with upstream instances by outcome",
            labels=["upstream", "instance", "outcome"],
        )
        up = GaugeMetricFamily(
            "tracseq_gateway_instance_up",
            "1 when the instance is healthy and not ejected",
            labels=["upstream", "instance"],
        )
        inflight = GaugeMetricFamily(
            "tracseq_gateway_instance_in_flight",
            "Requests in flight per instance",
            labels=["upstream", "instance"],
        )
        for name, pool in sorted(self.pools.items()):
            now = pool.now()
            for inst in pool.instances:
                upstream.add_metric([name, inst.address, "ok"], inst.successes)
                up.add_metric([name, inst.address], 1.0 if inst.available(now) else 0.0)
                inflight.add_metric([name, inst.address], inst.outstanding)
        for (pool_name, address, outcome), n in sorted(self.upstream_failures.items()):
            upstream.add_metric([pool_name, address, outcome], n)
        yield upstream
        yield up
        yield inflight
        retries = CounterMetricFamily(
            "tracseq_gateway_retries", "Requests retried on another instance", labels=["upstream"]
        )
        for pool_name, n in sorted(self.retries.items()):
            retries.add_metric([pool_name], n)
        yield retries


class _Collector:
    def __init__(self) -> None:
        self.stats: weakref.WeakSet[GatewayStats] = weakref.WeakSet()

    def collect(self) -> Iterator[Metric]:
        merged = GatewayStats()
        for stats in list(self.stats):
            merged.pools.update(stats.pools)
            for k, v in stats.responses.items():
                merged.responses[k] = merged.responses.get(k, 0) + v
            for route, lat in stats.latency.items():
                m = merged.latency.setdefault(route, _Latency())
                m.counts = [a + b for a, b in zip(m.counts, lat.counts, strict=True)]
                m.total += lat.total
            for k2, v in stats.upstream_failures.items():
                merged.upstream_failures[k2] = merged.upstream_failures.get(k2, 0) + v
            for k3, v in stats.retries.items():
                merged.retries[k3] = merged.retries.get(k3, 0) + v
        yield from merged.collect()

    def describe(self) -> list[Metric]:
        return []  # families are only known at scrape time


_collectors: dict[int, tuple[CollectorRegistry, _Collector]] = {}


def register_stats(registry: CollectorRegistry, stats: GatewayStats) -> None:
    """Expose ``stats`` on ``registry`` (one collector per registry for all gateways)."""
    hit = _collectors.get(id(registry))
    if hit is None or hit[0] is not registry:
        collector = _Collector()
        registry.register(collector)
        _collectors[id(registry)] = (registry, collector)
    else:
        collector = hit[1]
    collector.stats.add(stats)
