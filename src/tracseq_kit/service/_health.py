"""What the chassis needs from a health registry, and a private stand-in.

:class:`HealthEndpoints` is the interface ``create_service`` is written against; the
health module's registry provides it. ``_BasicHealth`` is a minimal private stand-in used
only when no registry is passed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

import anyio

from tracseq_kit.service._types import ASGIApp, Receive, Scope, Send

HealthCheck = Callable[[], Awaitable[object]]
"""An async callable that raises when the dependency it checks is unhealthy."""

HEALTH_PATHS = ("/livez", "/readyz", "/startupz", "/health")


@runtime_checkable
class HealthEndpoints(Protocol):
    """The part of a health registry that ``create_service`` uses.

    - ``add_check(name, check)``: register a readiness check; ``check`` is an async callable
      that raises when the dependency is unhealthy. The chassis adds one per resource that
      has a check, after the resource is open.
    - ``mark_started()``: called once every resource is open; ``/startupz`` turns 200.
    - ``asgi_app()``: an ASGI app that answers ``GET`` on ``/livez``, ``/readyz``,
      ``/startupz`` and ``/health``, seeing the full request path in ``scope["path"]``.
    """

    def add_check(self, name: str, check: HealthCheck) -> None:
        """Register a readiness check."""
        ...

    def mark_started(self) -> None:
        """Record that startup finished."""
        ...

    def asgi_app(self) -> ASGIApp:
        """Return the ASGI app serving the health paths."""
        ...


class _BasicHealth:
    """Private stand-in: 200/503 with a small JSON body; checks time out after 2 s."""

    def __init__(self, *, timeout: float = 2.0) -> None:
        self._checks: dict[str, HealthCheck] = {}
        self._started = False
        self._timeout = timeout

    def add_check(self, name: str, check: HealthCheck) -> None:
        self._checks[name] = check

    def mark_started(self) -> None:
        self._started = True

    def asgi_app(self) -> ASGIApp:
        return self._serve

    async def _run_checks(self) -> dict[str, str]:
        results: dict[str, str] = {}

        async def run(name: str, check: HealthCheck) -> None:
            try:
                with anyio.fail_after(self._timeout):
                    await check()
                results[name] = "pass"
            except Exception as exc:
                results[name] = f"fail: {type(exc).__name__}"

        async with anyio.create_task_group() as tg:
            for name, check in self._checks.items():
                tg.start_soon(run, name, check)
        return results

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        checks: dict[str, str] = {}
        if path == "/livez":
            ok = True
        elif path == "/startupz":
            ok = self._started
        else:
            checks = await self._run_checks() if self._started else {}
            ok = self._started and all(v == "pass" for v in checks.values())
        doc = {"status": "pass" if ok else "fail", "started": self._started, "checks": checks}
        body = json.dumps(doc).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200 if ok else 503,
                "headers": [
                    (b"content-type", b"application/health+json"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
