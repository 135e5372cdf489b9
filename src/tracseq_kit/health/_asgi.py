"""Pure ASGI health endpoints, usable from any ASGI framework."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from typing import Any

from tracseq_kit.asgi._probes import HEALTH_JSON, HealthWord, send_json, send_probe
from tracseq_kit.asgi._problem import send_problem
from tracseq_kit.asgi._types import Receive, Scope, Send
from tracseq_kit.health._registry import HealthRegistry, HealthReport

__all__ = ["HealthEndpoints"]

_TRACSEQ_STATUS: dict[str, HealthWord] = {
    "pass": "healthy",
    "warn": "degraded",
    "fail": "unhealthy",
}


class HealthEndpoints:
    """An ASGI app answering ``GET``/``HEAD`` on the four health paths.

    - ``/livez``: the process is up; never looks at dependencies. Always 200.
    - ``/startupz``: 200 once the service called ``mark_started()``, else 503.
    - ``/readyz``: runs the checks (cached); 200 for pass/warn, 503 for fail or before
      startup. Always an ``application/health+json`` document.
    - ``/health``: the same verdict in the shape TracSeq tooling reads,
      ``{"service": ..., "status": "healthy"|"degraded"|"unhealthy", "checks": {...}}``;
      with ``Accept: application/health+json`` the IETF document instead.

    Error strings and timings appear only for callers that ``authorize(scope)``
    accepts or that send ``Authorization: Bearer <token>``; ``public_details=True``
    shows them to everyone. Paths are matched after removing ``root_path``, so the app
    can be mounted. Other methods get 405, other paths 404 (problem+json).
    """

    def __init__(
        self,
        registry: HealthRegistry,
        *,
        authorize: Callable[[Scope], bool] | None = None,
        token: str | None = None,
        public_details: bool = False,
        version: str | None = None,
    ) -> None:
        self.registry = registry
        self._authorize = authorize
        self._token = f"Bearer {token}".encode() if token else None
        self._public = public_details
        self._version = version
        self._bodies: dict[tuple[int, str, bool], bytes] = {}
        self._last_report: HealthReport | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        method = scope["method"]
        if path not in ("/livez", "/readyz", "/startupz", "/health"):
            await send_problem(send, 404, detail=f"no health endpoint at {path}")
            return
        if method not in ("GET", "HEAD"):
            await send_problem(
                send,
                405,
                detail=f"{method} is not allowed here",
                headers=[(b"allow", b"GET, HEAD")],
            )
            return
        head = method == "HEAD"
        if path == "/livez":
            await send_probe(send, True, head=head)
            return
        started = self.registry.started
        if path == "/startupz":
            await send_probe(send, started, head=head)
            return
        report = self.registry.cached() or await self.registry.run()
        details = self._public or self._authorized(scope)
        if path == "/readyz" or _wants_health_json(scope):
            variant, media = "ietf", HEALTH_JSON
        else:
            variant, media = "tracseq", "application/json"
        status = report.http_status if started else 503
        body = self._body(report, variant, details, started)
        await send_json(send, status, body, media, head=head)

    def _authorized(self, scope: Scope) -> bool:
        if self._authorize is not None and self._authorize(scope):
            return True
        if self._token is not None:
            for key, value in scope.get("headers", ()):
                if key == b"authorization":
                    return hmac.compare_digest(value, self._token)
        return False

    def _body(self, report: HealthReport, variant: str, details: bool, started: bool) -> bytes:
        if report is not self._last_report:
            self._bodies.clear()
            self._last_report = report
        cache_key = (int(started), variant, details)
        body = self._bodies.get(cache_key)
        if body is None:
            doc = (
                self._ietf(report, details, started)
                if variant == "ietf"
                else self._tracseq(report, details, started)
            )
            body = json.dumps(doc, separators=(",", ":"), default=str).encode()
            self._bodies[cache_key] = body
        return body

    def _tracseq(self, report: HealthReport, details: bool, started: bool) -> dict[str, Any]:
        status = report.status if started else "fail"
        checks: dict[str, Any] = {}
        for r in report.checks:
            entry: dict[str, Any] = {
                "status": _TRACSEQ_STATUS[r.status]
                if r.status != "fail" or r.critical
                else "degraded",
                "critical": r.critical,
            }
            if details:
                entry.update(
                    componentType=r.component_type,
                    observedValue=r.observed_value,
                    observedUnit=r.observed_unit,
                    output=r.output,
                    durationMs=r.duration_ms,
                    time=r.time,
                )
            checks[r.name] = entry
        doc: dict[str, Any] = {"service": report.service, "status": _TRACSEQ_STATUS[status]}
        if self._version:
            doc["version"] = self._version
        if not started:
            doc["output"] = "starting"
        doc["checks"] = checks
        return doc

    def _ietf(self, report: HealthReport, details: bool, started: bool) -> dict[str, Any]:
        checks: dict[str, list[dict[str, Any]]] = {}
        for r in report.checks:
            entry: dict[str, Any] = {
                "componentId": r.name,
                "componentType": r.component_type,
                "status": r.status if r.status != "fail" or r.critical else "warn",
                "time": r.time,
            }
            if details:
                if r.observed_value is not None:
                    entry["observedValue"] = r.observed_value
                    if r.observed_unit:
                        entry["observedUnit"] = r.observed_unit
                if r.output:
                    entry["output"] = r.output
            checks[f"{r.name}:{r.measurement}"] = [entry]
        doc: dict[str, Any] = {
            "status": report.status if started else "fail",
            "serviceId": report.service,
        }
        if self._version:
            doc["version"] = self._version
        if not started:
            doc["output"] = "starting"
        doc["checks"] = checks
        return doc


def _wants_health_json(scope: Scope) -> bool:
    for key, value in scope.get("headers", ()):
        if key == b"accept":
            return b"application/health+json" in value
    return False
