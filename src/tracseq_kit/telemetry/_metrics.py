"""The process-wide Prometheus registry shared by every kit module.

prometheus-client was chosen over the OpenTelemetry Prometheus exporter because its
counters and histograms cost well under a microsecond per update and it supports
collectors that read state only at scrape time, which keeps hot paths (breakers,
limiters) free of metric work.

Modules get their instruments with :func:`counter`, :func:`gauge` and :func:`histogram`.
These are get-or-create: asking twice for the same name on the same registry returns the
same instrument (so creating two apps or two breakers in one process is fine), and asking
for an existing name with another type or other labels fails with ``ConfigurationError``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from tracseq_kit._exceptions import ConfigurationError

_registry = CollectorRegistry(auto_describe=True)
_lock = threading.Lock()
_instruments: weakref.WeakKeyDictionary[
    CollectorRegistry, dict[str, Counter | Gauge | Histogram]
] = weakref.WeakKeyDictionary()

_I = TypeVar("_I", Counter, Gauge, Histogram)

#: Bucket boundaries (seconds) the OpenTelemetry HTTP semantic conventions recommend.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip


def metrics_registry() -> CollectorRegistry:
    """Return the registry that ``/metrics`` serves and kit modules register on."""
    return _registry


def reset_metrics_registry() -> CollectorRegistry:
    """Replace the shared registry with an empty one and return it (for tests)."""
    global _registry
    _registry = CollectorRegistry(auto_describe=True)
    return _registry


def counter(
    name: str,
    documentation: str,
    *,
    labelnames: Sequence[str] = (),
    registry: CollectorRegistry | None = None,
) -> Counter:
    """Return the counter ``name`` on ``registry`` (default: the shared one), creating it once.

    Follow Prometheus naming: counters end in ``_total`` (added if missing, as
    prometheus-client does). Raises ``ConfigurationError`` if ``name`` is already
    registered with another type or other label names.
    """
    return _get_or_create(Counter, name, documentation, labelnames, registry)


def gauge(
    name: str,
    documentation: str,
    *,
    labelnames: Sequence[str] = (),
    registry: CollectorRegistry | None = None,
) -> Gauge:
    """Return the gauge ``name`` on ``registry`` (default: the shared one), creating it once.

    Raises ``ConfigurationError`` on a type or label-name clash, like :func:`counter`.
    """
    return _get_or_create(Gauge, name, documentation, labelnames, registry)


def histogram(
    name: str,
    documentation: str,
    *,
    labelnames: Sequence[str] = (),
    buckets: Sequence[float] = DURATION_BUCKETS,
    registry: CollectorRegistry | None = None,
) -> Histogram:
    """Return the histogram ``name`` on ``registry`` (default: the shared one), creating it once.

    ``buckets`` defaults to :data:`DURATION_BUCKETS` (seconds). Durations should be
    named ``..._seconds``. Raises ``ConfigurationError`` on a type or label-name clash.
    """
    return _get_or_create(Histogram, name, documentation, labelnames, registry, buckets=buckets)


def render_metrics(registry: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """Return ``(body, content_type)`` of the Prometheus text exposition of ``registry``."""
    return generate_latest(registry or _registry), CONTENT_TYPE_LATEST


def _get_or_create(
    kind: type[_I],
    name: str,
    documentation: str,
    labelnames: Sequence[str],
    registry: CollectorRegistry | None,
    **options: object,
) -> _I:
    target = registry if registry is not None else _registry
    labels = tuple(labelnames)
    with _lock:
        known = _instruments.setdefault(target, {})
        existing = known.get(name)
        if existing is None:
            try:
                created = kind(name, documentation, labels, registry=target, **options)  # type: ignore[arg-type]
            except ValueError as exc:  # a clash with a collector registered directly
                raise ConfigurationError(f"metric {name!r} cannot be registered: {exc}") from exc
            known[name] = created
            return created
    if not isinstance(existing, kind) or tuple(existing._labelnames) != labels:
        raise ConfigurationError(
            f"metric {name!r} is already registered as {type(existing).__name__} with "
            f"labels {list(existing._labelnames)}; asked for {kind.__name__} with {list(labels)}"
        )
    return existing
