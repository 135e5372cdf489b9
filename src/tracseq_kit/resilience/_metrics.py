"""Prometheus metrics of every live breaker, read at scrape time (no hot-path cost)."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from tracseq_kit.telemetry import metrics_registry

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from tracseq_kit.resilience._breaker import CircuitBreaker

_breakers: weakref.WeakSet[CircuitBreaker] = weakref.WeakSet()
_registered: weakref.WeakSet[CollectorRegistry] = weakref.WeakSet()

_STATE_VALUES = {"closed": 0, "open": 1, "half_open": 2, "forced_open": 3, "disabled": 4}


class _BreakerCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "tracseq_circuit_breaker_state",
            "Breaker state: 0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled",
            labels=["breaker"],
        )
        calls = CounterMetricFamily(
            "tracseq_circuit_breaker_calls",
            "Calls through the breaker by outcome",
            labels=["breaker", "outcome"],
        )
        transitions = CounterMetricFamily(
            "tracseq_circuit_breaker_transitions", "State transitions", labels=["breaker"]
        )
        fallbacks = CounterMetricFamily(
            "tracseq_circuit_breaker_fleet_fallbacks",
            "Switches from shared (Redis) to local state",
            labels=["breaker"],
        )
        for b in list(_breakers):
            name = b.name
            state.add_metric([name], _STATE_VALUES[b._state.value])
            for outcome, value in (
                ("success", b._n_success),
                ("failure", b._n_failure),
                ("slow", b._n_slow),
                ("ignored", b._n_ignored),
                ("rejected", b._n_rejected),
                ("late", b._n_late),
            ):
                calls.add_metric([name, outcome], value)
            transitions.add_metric([name], b._n_transitions)
            fallbacks.add_metric([name], b._n_fleet_fallbacks)
        yield state
        yield calls
        yield transitions
        yield fallbacks

    def describe(self) -> Iterator[Metric]:
        return iter(())


def track(breaker: CircuitBreaker) -> None:
    """Include ``breaker`` in the metrics of the current shared registry."""
    _breakers.add(breaker)
    registry = metrics_registry()
    if registry not in _registered:
        registry.register(_BreakerCollector())
        _registered.add(registry)
