"""The gateway's rate limiting: named policies of :mod:`tracseq_kit.ratelimit`."""

from __future__ import annotations

from typing import Any

from tracseq_kit.gateway._hooks import RateLimitVerdict
from tracseq_kit.ratelimit import (
    MemoryStore,
    PolicyConfig,
    RateLimiter,
    RedisStore,
    ratelimit_headers,
)

__all__ = ["LimiterHook"]


class LimiterHook:
    """A :class:`~tracseq_kit.gateway.RateLimitHook` over one :class:`RateLimiter` per
    named policy, sharing one store (memory, or Redis so that every gateway process
    enforces one limit together)."""

    def __init__(
        self,
        policies: dict[str, PolicyConfig],
        *,
        store: MemoryStore | RedisStore | None = None,
        on_failure: Any = "local",
    ) -> None:
        shared = store if store is not None else MemoryStore()
        self.limiters = {
            name: RateLimiter(
                [cfg.build(name)], store=shared, on_failure=on_failure, name=f"gateway:{name}"
            )
            for name, cfg in policies.items()
        }

    async def check(self, *, policy: str, key: str) -> RateLimitVerdict:
        """Consume one unit of ``policy`` for ``key``; headers per the IETF draft."""
        limiter = self.limiters[policy]
        d = await limiter.acquire(key)
        return RateLimitVerdict(
            allowed=d.allowed,
            headers=ratelimit_headers(d, limiter.policies)[:2],
            retry_after=d.retry_after,
        )
