"""Brute-force protection: failed authentications counted per name and per address.

A *name* is a client id (token endpoint) or a username (device page); an *address* is the
client's IP (``X-Forwarded-For`` is believed only from ``trusted_proxies``). Each may fail
a burst of attempts, then one more per ``period / limit`` seconds (GCRA from
``tracseq_kit.ratelimit``). Only failures count, so a robot that fetches tokens often, or
the many people who share the CLI's client id, are never slowed down by their successes.
Counts live in Redis when the service has it (every instance shares them), else in memory.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import HTTPException, Request

from tracseq_kit.ratelimit import GCRA, MemoryStore, RateLimiter, RedisStore, client_ip

__all__ = ["Guard", "TooManyFailures"]


class TooManyFailures(HTTPException):
    """Raised by :meth:`Guard.admit` (answered 429 with ``Retry-After``)."""

    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(
            429,
            f"too many failed attempts; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
        self.retry_after = seconds


class Guard:
    """Counts failures; :meth:`admit` refuses a name or address that failed too often.

    ``redis`` (a ``redis.asyncio.Redis``) shares the counts between instances; while it is
    unreachable each instance counts for itself (the limiter's ``local`` failure policy).
    """

    def __init__(
        self,
        *,
        per_name: int,
        per_address: int,
        period: float,
        redis: Any = None,
        redis_prefix: str = "tracseq:auth:",
        trusted_proxies: list[Any] | None = None,
    ) -> None:
        def store() -> MemoryStore | RedisStore:
            return RedisStore(redis, prefix=redis_prefix) if redis else MemoryStore()

        self._names = RateLimiter(
            [GCRA("auth-failures-name", per_name, period)], store=store(), name="auth-name"
        )
        self._addresses = RateLimiter(
            [GCRA("auth-failures-address", per_address, period)],
            store=store(),
            name="auth-address",
        )
        self._trusted = trusted_proxies or []

    def address(self, request: Request) -> str:
        """The client address of ``request``."""
        return client_ip(request.scope, self._trusted)

    async def admit(self, request: Request, name: str | None) -> None:
        """Raise :class:`TooManyFailures` if ``name`` or the request's address failed too
        often lately; consumes nothing."""
        decision = await self._addresses.check(f"address:{self.address(request)}")
        if decision.allowed and name:
            decision = await self._names.check(f"name:{name}")
        if not decision.allowed:
            raise TooManyFailures(decision.retry_after)

    async def failed(self, request: Request, name: str | None) -> None:
        """Count one failure of ``name`` and of the request's address."""
        await self._addresses.acquire(f"address:{self.address(request)}")
        if name:
            await self._names.acquire(f"name:{name}")
