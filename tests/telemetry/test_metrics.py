from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from tracseq_kit import ConfigurationError
from tracseq_kit.telemetry import (
    counter,
    gauge,
    histogram,
    metrics_registry,
    render_metrics,
    reset_metrics_registry,
)


def test_get_or_create_returns_the_same_instrument() -> None:
    registry = CollectorRegistry()
    first = counter(
        "tracseq_publish_total", "Events published.", labelnames=["topic"], registry=registry
    )
    again = counter(
        "tracseq_publish_total", "Events published.", labelnames=["topic"], registry=registry
    )
    assert first is again
    first.labels("samples").inc(2)
    body, content_type = render_metrics(registry)
    assert b'tracseq_publish_total{topic="samples"} 2.0' in body
    assert content_type.startswith("text/plain")


def test_clashes_are_configuration_errors() -> None:
    registry = CollectorRegistry()
    gauge("tracseq_breaker_state", "Breaker state.", labelnames=["name"], registry=registry)
    with pytest.raises(ConfigurationError, match="already registered as Gauge"):
        histogram("tracseq_breaker_state", "x", registry=registry)
    with pytest.raises(ConfigurationError, match="labels"):
        gauge("tracseq_breaker_state", "x", labelnames=["other"], registry=registry)


def test_shared_registry_and_reset() -> None:
    old = metrics_registry()
    first = counter("tracseq_limiter_decisions_total", "Decisions.", labelnames=["decision"])
    assert (
        counter("tracseq_limiter_decisions_total", "Decisions.", labelnames=["decision"]) is first
    )
    new = reset_metrics_registry()
    assert new is metrics_registry() and new is not old
    second = counter("tracseq_limiter_decisions_total", "Decisions.", labelnames=["decision"])
    assert second is not first
    body, _ = render_metrics()
    assert b"tracseq_limiter_decisions_total" in body


def test_scrape_time_collectors_register_directly() -> None:
    from prometheus_client.core import GaugeMetricFamily

    class BreakerStates:
        def collect(self):  # type: ignore[no-untyped-def]
            family = GaugeMetricFamily("tracseq_breaker_open", "1 when open", labels=["name"])
            family.add_metric(["db"], 1.0)
            yield family

    registry = CollectorRegistry()
    registry.register(BreakerStates())
    assert b'tracseq_breaker_open{name="db"} 1.0' in render_metrics(registry)[0]
