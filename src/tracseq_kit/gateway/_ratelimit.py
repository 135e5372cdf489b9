"""The gateway's rate limiting: named policies of :mod:`tracseq_kit.ratelimit`."""

from __future__ import annotations

import math
from typing import Any

from tracseq_kit.gateway._hooks import RateLimitVerdict
from tracseq_kit.ratelimit import (
    Decision,
    MemoryStore,
    PolicyConfig,
    RateLimiter,
    RedisStore,
    ratelimit_headers,
)

__all__ = ["LimiterHook"]


def _full_quota(policy: Any) -> Decision:
    return Decision(True, policy.capacity, 0.0, 0.0, policy.name, policy.capacity, policy.period)


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
        # The RateLimit-Policy field never changes for a policy: encode it once.
        self._policy_fields = {
            name: ratelimit_headers(_full_quota(lim.policies[0]), lim.policies)[0]
            for name, lim in self.limiters.items()
        }

        self._names = {name: name.encode() for name in self.limiters}
        self._local = isinstance(shared, MemoryStore)

    async def check(self, *, policy: str, key: str) -> RateLimitVerdict:
        """Consume one unit of ``policy`` for ``key``; headers per the IETF draft."""
        return self._verdict(policy, await self.limiters[policy].acquire(key))

    def check_nowait(self, *, policy: str, key: str) -> RateLimitVerdict | None:
        """:meth:`check` without awaiting when the limits live in memory; ``None`` when
        they live in Redis (the caller awaits :meth:`check` then)."""
        if not self._local:
            return None
        return self._verdict(policy, self.limiters[policy].acquire_nowait(key))

    def _verdict(self, policy: str, d: Decision) -> RateLimitVerdict:
        reset = math.ceil(d.reset_after - 1e-9) if d.reset_after > 0 else 0
        return RateLimitVerdict(
            d.allowed,
            (
                self._policy_fields[policy],
                (b"ratelimit", b'"%s";r=%d;t=%d' % (self._names[policy], d.remaining, reset)),
            ),
            d.retry_after,
        )
