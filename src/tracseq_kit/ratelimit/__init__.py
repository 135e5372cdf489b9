"""Rate limiting: GCRA and sliding-window policies, in memory or in Redis.

- Policies: :class:`GCRA` (rate + burst) and :class:`SlidingWindow`.
- :class:`RateLimiter` decides several policies all or nothing, with ``check`` (peek)
  and ``acquire`` (consume), returning a :class:`Decision`.
- Stores: :class:`MemoryStore` (injectable clock, idle keys evicted) and
  :class:`RedisStore` (one Lua round trip per decision, concurrent decisions
  pipelined, server clock).
- :class:`RateLimitMiddleware`: pure ASGI, IETF ``RateLimit``/``RateLimit-Policy``
  headers, 429 problem+json with ``Retry-After``.
"""

from tracseq_kit.ratelimit._headers import ratelimit_headers
from tracseq_kit.ratelimit._limiter import FailurePolicy, RateLimiter
from tracseq_kit.ratelimit._memory import MemoryStore
from tracseq_kit.ratelimit._middleware import (
    PolicyConfig,
    RateLimitConfig,
    RateLimitMiddleware,
    RouteLimit,
    client_ip,
)
from tracseq_kit.ratelimit._policy import GCRA, Decision, Policy, SlidingWindow
from tracseq_kit.ratelimit._redis import RedisStore

__all__ = [
    "GCRA",
    "Decision",
    "FailurePolicy",
    "MemoryStore",
    "Policy",
    "PolicyConfig",
    "RateLimitConfig",
    "RateLimitMiddleware",
    "RateLimiter",
    "RedisStore",
    "RouteLimit",
    "SlidingWindow",
    "client_ip",
    "ratelimit_headers",
]
