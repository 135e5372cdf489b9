"""HTTP server metrics on the shared Prometheus registry, and the ``/metrics`` endpoint."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram

from tracseq_kit.asgi._types import ASGIApp, Message, Receive, Scope, Send, method_of, route_of
from tracseq_kit.telemetry._metrics import gauge, histogram, metrics_registry, render_metrics

DURATION_METRIC = "http_server_request_duration_seconds"
ACTIVE_METRIC = "http_server_active_requests"
_LABELS = ("http_request_method", "http_route", "http_response_status_code")


class MetricsMiddleware:
    """Record ``http.server.request.duration`` and in-flight requests for every HTTP request.

    Prometheus names: ``http_server_request_duration_seconds`` (histogram labelled
    ``http_request_method``, ``http_route`` and ``http_response_status_code``; the route is
    the template, empty when nothing matched, so label cardinality stays bounded) and
    ``http_server_active_requests`` (gauge labelled ``http_request_method``). An exception
    that escapes the application is counted as status 500. ``registry`` defaults to the
    shared :func:`~tracseq_kit.telemetry.metrics_registry` as it is at request time.
    Pure ASGI: works in front of any ASGI application.
    """

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry | None = None) -> None:
        self.app = app
        self._fixed_registry = registry
        self._registry: CollectorRegistry | None = None
        self._duration: Histogram
        self._active: Gauge
        # Labelled children by label values: skips prometheus-client's per-call label
        # validation and lock. Bounded: methods and routes are finite, statuses < 1000.
        self._timers: dict[tuple[str, str, int], Any] = {}
        self._gauges: dict[str, Any] = {}

    def _instruments(self) -> tuple[Histogram, Gauge]:
        registry = self._fixed_registry or metrics_registry()
        if registry is not self._registry:
            self._duration = histogram(
                DURATION_METRIC,
                "Duration of HTTP server requests.",
                labelnames=_LABELS,
                registry=registry,
            )
            self._active = gauge(
                ACTIVE_METRIC,
                "Number of HTTP server requests in flight.",
                labelnames=("http_request_method",),
                registry=registry,
            )
            self._registry = registry
            self._timers = {}
            self._gauges = {}
        return self._duration, self._active

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        duration, active = self._instruments()
        method = method_of(scope)
        in_flight = self._gauges.get(method)
        if in_flight is None:
            in_flight = self._gauges[method] = active.labels(method)
        in_flight.inc()
        status_code = 500
        start = time.perf_counter()

        async def send_recording_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            elapsed = time.perf_counter() - start
            in_flight.dec()
            key = (method, route_of(scope) or "", status_code)
            timer = self._timers.get(key)
            if timer is None:
                timer = self._timers[key] = duration.labels(key[0], key[1], str(status_code))
            timer.observe(elapsed)


class MetricsEndpoint:
    """An ASGI endpoint that answers with the Prometheus text exposition of ``registry``
    (default: the shared registry as it is at request time)."""

    def __init__(self, *, registry: CollectorRegistry | None = None) -> None:
        self._registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, content_type = render_metrics(self._registry or metrics_registry())
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"content-length", str(len(body)).encode("latin-1")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
