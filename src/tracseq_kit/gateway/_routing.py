"""The routing table: an immutable, compiled view of the configured routes.

A reload builds a new table and swaps one reference, so requests in flight keep the
table (and pools) they started with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tracseq_kit.gateway._config import RouteConfig
from tracseq_kit.gateway._pool import UpstreamPool

__all__ = ["Route", "RoutingTable"]

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Route:
    """A compiled route (see :class:`RouteConfig` for the meaning of each field)."""

    index: int
    prefix: str
    pool: UpstreamPool
    replacement: str | None
    methods: frozenset[str]
    host: bytes | None
    headers: tuple[tuple[bytes, bytes], ...]
    timeout: float
    auth: bool
    """An identity is required (``auth``, or any scopes)."""
    read_scopes: tuple[str, ...]
    write_scopes: tuple[str, ...]
    rate_limit: str | None
    retry: bool
    name: str
    deadline_ms: bytes = b""
    """``timeout`` in whole milliseconds, as sent upstream in the deadline header."""

    def matches(self, method: str, host: bytes | None, headers: Mapping[bytes, bytes]) -> bool:
        """Whether method, host and required headers fit (the prefix already matched)."""
        if self.methods and method not in self.methods:
            return False
        if self.host is not None and (host is None or host.split(b":")[0] != self.host):
            return False
        return all(headers.get(name) == value for name, value in self.headers)

    def scopes_for(self, method: str) -> tuple[str, ...]:
        """The scopes a request with ``method`` needs on this route."""
        return self.read_scopes if method in _READ_METHODS else self.write_scopes

    def target(self, path: str) -> str:
        """The upstream path for ``path`` after stripping or rewriting the prefix."""
        if self.replacement is None:
            return path
        rest = path[len(self.prefix) :]
        if not rest:
            return self.replacement or "/"
        if self.replacement.endswith("/") and rest.startswith("/"):
            rest = rest[1:]
        elif not self.replacement.endswith("/") and not rest.startswith("/"):
            rest = "/" + rest
        return self.replacement + rest


class RoutingTable:
    """Routes ordered by longest prefix first (then file order); first match wins."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(sorted(routes, key=lambda r: (-len(r.prefix), r.index)))
        self._simple = all(not r.methods and r.host is None and not r.headers for r in self.routes)

    @classmethod
    def build(
        cls, configs: Sequence[RouteConfig], pools: Mapping[str, UpstreamPool]
    ) -> RoutingTable:
        """Compile route configs against the named pools."""
        routes = []
        for i, rc in enumerate(configs):
            replacement = (
                rc.rewrite if rc.rewrite is not None else ("/" if rc.strip_prefix else None)
            )
            if isinstance(rc.scopes, tuple):
                read_scopes = write_scopes = rc.scopes
            else:
                read_scopes, write_scopes = rc.scopes.read, rc.scopes.write
            routes.append(
                Route(
                    index=i,
                    prefix=rc.prefix,
                    pool=pools[rc.upstream],
                    replacement=replacement,
                    methods=frozenset(rc.methods),
                    host=rc.host.lower().encode() if rc.host else None,
                    headers=tuple(
                        (k.lower().encode(), v.encode()) for k, v in sorted(rc.headers.items())
                    ),
                    timeout=rc.timeout,
                    auth=rc.auth or bool(read_scopes or write_scopes),
                    read_scopes=read_scopes,
                    write_scopes=write_scopes,
                    rate_limit=rc.rate_limit,
                    retry=rc.retry,
                    name=rc.prefix,
                    deadline_ms=str(int(rc.timeout * 1000)).encode(),
                )
            )
        return cls(routes)

    def match(
        self,
        method: str,
        path: str,
        host: bytes | None = None,
        headers: Mapping[bytes, bytes] | None = None,
    ) -> Route | None:
        """The route for this request, or None."""
        simple = self._simple
        for route in self.routes:
            prefix = route.prefix
            if (
                path.startswith(prefix)
                # "/api/templates" matches "/api/templates" and "/api/templates/..." but
                # not "/api/templatesx"
                and (len(path) == len(prefix) or prefix[-1] == "/" or path[len(prefix)] == "/")
                and (simple or route.matches(method, host, headers or {}))
            ):
                return route
        return None
