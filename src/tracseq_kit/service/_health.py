"""What the chassis needs from a health registry.

:class:`HealthProvider` is the interface ``create_service`` is written against;
:class:`tracseq_kit.health.HealthRegistry` provides it and is the default.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from tracseq_kit.asgi._types import ASGIApp

__all__ = ["HEALTH_PATHS", "HealthProvider"]

HEALTH_PATHS = ("/livez", "/readyz", "/startupz", "/health")


@runtime_checkable
class HealthProvider(Protocol):
    """The part of a health registry that ``create_service`` uses.

    - ``add_check(name, check)``: register a readiness check; ``check`` is an async callable
      that raises when the dependency is unhealthy. The chassis adds one per resource that
      has a check, after the resource is open.
    - ``mark_started()``: called once every resource is open; ``/startupz`` turns 200.
    - ``asgi_app()``: an ASGI app that answers ``GET`` on ``/livez``, ``/readyz``,
      ``/startupz`` and ``/health``, seeing the full request path in ``scope["path"]``.
    """

    def add_check(self, name: str, check: Callable[[], Awaitable[object]]) -> None:
        """Register a readiness check."""
        ...

    def mark_started(self) -> None:
        """Record that startup finished."""
        ...

    def asgi_app(self) -> ASGIApp:
        """Return the ASGI app serving the health paths."""
        ...
