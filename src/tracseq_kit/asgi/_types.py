"""ASGI type aliases (the same shapes as ``starlette.types``, without importing it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send", "header", "method_of", "route_of"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)


def method_of(scope: Scope) -> str:
    """The request method, or ``_OTHER`` for unknown ones (bounds label cardinality, as
    the HTTP semantic conventions require)."""
    method: str = scope["method"]
    return method if method in _KNOWN_METHODS else "_OTHER"


def route_of(scope: Scope) -> str | None:
    """The matched route template (``/items/{item_id}``), or ``None`` before routing or
    when no route matched. Works with Starlette and FastAPI, which store the route in
    ``scope["route"]``; other frameworks may set ``scope["route"]`` to a template string."""
    route = scope.get("route")
    if route is None:
        return None
    if isinstance(route, str):
        return route
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else None


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case bytes), or ``None``."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None
