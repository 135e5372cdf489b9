"""Resilience primitives shared by the gateway, the typed client and the publisher.

- :class:`CircuitBreaker` (with :class:`CircuitBreakerRegistry` and, for a fleet of
  processes, :class:`RedisBreakerStore`)
- :class:`Retry` and :class:`RetryBudget`
- :func:`deadline` and its HTTP header helpers
- :class:`Bulkhead`
- :func:`deterministic_mode` and :class:`ManualClock` for deterministic tests
"""

from tracseq_kit.resilience._breaker import (
    BreakerState,
    BreakerStats,
    CircuitBreaker,
    Permit,
    StateTransition,
)
from tracseq_kit.resilience._bulkhead import Bulkhead
from tracseq_kit.resilience._clock import ManualClock, deterministic_mode
from tracseq_kit.resilience._deadline import (
    DEADLINE_HEADER,
    deadline,
    deadline_from_headers,
    deadline_to_headers,
    remaining,
)
from tracseq_kit.resilience._fleet import RedisBreakerStore
from tracseq_kit.resilience._registry import CircuitBreakerRegistry
from tracseq_kit.resilience._retry import Retry, RetryBudget

__all__ = [
    "DEADLINE_HEADER",
    "BreakerState",
    "BreakerStats",
    "Bulkhead",
    "CircuitBreaker",
    "CircuitBreakerRegistry",
    "ManualClock",
    "Permit",
    "RedisBreakerStore",
    "Retry",
    "RetryBudget",
    "StateTransition",
    "deadline",
    "deadline_from_headers",
    "deadline_to_headers",
    "deterministic_mode",
    "remaining",
]
