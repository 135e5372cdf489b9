"""Who made a request: the identity the gateway verified and services receive."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["ADMIN_SCOPE", "ANONYMOUS", "IDENTITY_HEADER", "Identity"]

IDENTITY_HEADER: Final = "x-tracseq-identity"
"""The request header carrying the gateway's signed identity assertion to a service."""

ADMIN_SCOPE: Final = "admin"
"""A scope that holds every other one."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified caller: ``subject`` (a username or a robot client's id), how it was
    authenticated (``method``: ``jwt`` or ``api_key``), its ``scopes``, and the
    ``issuer`` of its credentials. ``kind`` is ``user`` or ``client`` when known."""

    subject: str
    method: str
    scopes: tuple[str, ...] = ()
    issuer: str | None = None
    kind: str | None = None

    def allows(self, required: Iterable[str]) -> bool:
        """Whether every scope in ``required`` is held (``admin`` holds them all)."""
        held = self.scopes
        return ADMIN_SCOPE in held or all(scope in held for scope in required)

    def missing(self, required: Iterable[str]) -> tuple[str, ...]:
        """The scopes of ``required`` not held (none with ``admin``)."""
        if ADMIN_SCOPE in self.scopes:
            return ()
        return tuple(scope for scope in required if scope not in self.scopes)


ANONYMOUS: Final = Identity(subject="anonymous", method="none", scopes=(ADMIN_SCOPE,))
"""Who acts when a service allows anonymous access (``allow_anonymous``: development
without authentication only): it holds every scope."""
