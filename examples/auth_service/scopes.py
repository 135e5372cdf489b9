"""The scopes a TracSeq token can carry, and how a ``scope`` parameter is read.

``SCOPES`` is the catalogue: ``<resource>:read`` lets a caller read a service's resources,
``<resource>:write`` change them, ``admin`` manage users, robot clients and signing keys
here. The gateway checks them per route; the services trust the gateway's verified
identity. A scope outside the catalogue is never granted.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

__all__ = ["SCOPES", "ScopeError", "ScopeName", "format_scope", "ordered", "parse_scope"]


class ScopeName(StrEnum):
    """One scope of the catalogue (what the admin API's schema lists)."""

    TEMPLATES_READ = "templates:read"
    TEMPLATES_WRITE = "templates:write"
    EVENTS_READ = "events:read"
    EVENTS_WRITE = "events:write"
    SAMPLES_READ = "samples:read"
    SAMPLES_WRITE = "samples:write"
    STORAGE_READ = "storage:read"
    STORAGE_WRITE = "storage:write"
    ADMIN = "admin"


SCOPES: tuple[str, ...] = tuple(s.value for s in ScopeName)
"""Every scope, in catalogue order: ``templates:read templates:write events:read
events:write samples:read samples:write storage:read storage:write admin``."""

_MAX_SCOPE_LENGTH = 1000


class ScopeError(ValueError):
    """A ``scope`` parameter names a scope outside the catalogue, or is malformed."""


def parse_scope(value: str | None) -> tuple[str, ...] | None:
    """The scopes of an OAuth ``scope`` parameter (space-separated), in catalogue order and
    without repeats; ``None`` when the parameter is absent or blank (the caller then gets
    every scope it may have). Raises :class:`ScopeError` naming an unknown scope."""
    if value is None or not value.strip():
        return None
    if len(value) > _MAX_SCOPE_LENGTH:
        raise ScopeError(f"scope is longer than {_MAX_SCOPE_LENGTH} characters")
    asked = set(value.split(" "))
    asked.discard("")
    unknown = sorted(asked - set(SCOPES))
    if unknown:
        raise ScopeError(f"unknown scope {unknown[0]!r}; known scopes: {' '.join(SCOPES)}")
    return ordered(asked)


def ordered(scopes: Iterable[str]) -> tuple[str, ...]:
    """``scopes`` in catalogue order, without repeats (unknown ones are dropped)."""
    wanted = set(scopes)
    return tuple(s for s in SCOPES if s in wanted)


def format_scope(scopes: Iterable[str]) -> str:
    """The space-separated ``scope`` value of ``scopes`` (catalogue order)."""
    return " ".join(ordered(scopes))
