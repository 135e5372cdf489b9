"""Seams where resilience and rate limiting plug into the gateway.

The gateway calls these small protocols on its hot path; it ships permissive defaults
so it runs without them. Adapters for :mod:`tracseq_kit.resilience` (circuit breaker
per pool, retry budget) and :mod:`tracseq_kit.ratelimit` implement them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

__all__ = [
    "AllowAllRateLimit",
    "NoGuard",
    "PoolGuard",
    "RateLimitHook",
    "RateLimitVerdict",
]


@runtime_checkable
class PoolGuard(Protocol):
    """Admits or rejects calls to one upstream pool: a circuit breaker.

    :class:`tracseq_kit.resilience.CircuitBreaker` is one. ``admit`` returns a permit or
    raises :class:`~tracseq_kit.CircuitOpenError` to fast-fail (the gateway answers 503
    with ``Retry-After`` = ``remaining``); ``record`` receives that permit and the
    outcome of the exchange: ``ok=False`` for connect errors, timeouts, invalid
    responses and 5xx. A guard may also have ``release(permit)``, called instead of
    ``record`` when the client, not the upstream, ended the exchange (a slow or vanished
    client); without it such permits are simply dropped.
    """

    async def admit(self) -> Any:
        """Return a permit, or raise CircuitOpenError when the call must not be made."""
        ...

    async def record(self, permit: Any, *, ok: bool) -> None:
        """Count the outcome of an admitted call."""
        ...


class NoGuard:
    """A :class:`PoolGuard` that admits everything (no breaker configured)."""

    async def admit(self) -> None:
        """Admit the call."""

    async def record(self, permit: Any, *, ok: bool) -> None:
        """Ignore the outcome."""

    async def release(self, permit: Any) -> None:
        """Nothing to free."""

    def admit_nowait(self) -> None:
        """Admit the call (without awaiting)."""

    def record_nowait(self, permit: Any, *, ok: bool) -> None:
        """Ignore the outcome (without awaiting)."""

    def release_nowait(self, permit: Any) -> None:
        """Nothing to free (without awaiting)."""


GuardFactory = Callable[[str], PoolGuard]


class RateLimitVerdict(NamedTuple):
    """The answer of a rate limiter: admitted or not, headers to add, wait time.

    A named tuple: one is made per request, and a tuple is the cheapest immutable record.
    """

    allowed: bool
    headers: Sequence[tuple[bytes, bytes]] = ()
    retry_after: float = 0.0


@runtime_checkable
class RateLimitHook(Protocol):
    """Checks the named policy for a client key (identity subject or client address)."""

    async def check(self, *, policy: str, key: str) -> RateLimitVerdict:
        """Decide one request; raising is treated as "allow" (fail open) and logged."""
        ...


class AllowAllRateLimit:
    """A :class:`RateLimitHook` that admits everything (no limiter configured)."""

    async def check(self, *, policy: str, key: str) -> RateLimitVerdict:
        """Admit the request."""
        return _ALLOW


_ALLOW = RateLimitVerdict(allowed=True)
