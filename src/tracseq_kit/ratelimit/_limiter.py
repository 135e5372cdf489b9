"""RateLimiter: policies + a store + what to do when the store is unreachable."""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from tracseq_kit._exceptions import (
    ConfigurationError,
    DependencyUnavailableError,
    RateLimitExceededError,
)
from tracseq_kit.ratelimit._memory import _EPS, MemoryStore
from tracseq_kit.ratelimit._policy import GCRA, Decision, Policy
from tracseq_kit.ratelimit._redis import RedisStore
from tracseq_kit.telemetry import metrics_registry

__all__ = ["FailurePolicy", "RateLimiter"]

logger = logging.getLogger("tracseq_kit.ratelimit")

# Building the NamedTuple through tuple.__new__ skips its Python-level __new__.
_new = tuple.__new__

FailurePolicy = Literal["open", "closed", "local"]
"""What a limiter does while its Redis store is unreachable: admit everything
(``open``), reject everything (``closed``), or decide with a local in-memory store
(``local``, per-process limits)."""


class RateLimiter:
    """Decides requests against one or more policies, all or nothing.

    ``await limiter.acquire(key)`` consumes ``cost`` units from every policy when all of
    them admit the request and from none otherwise (a rejected request consumes
    nothing); ``await limiter.check(key)`` only peeks. Both return a
    :class:`~tracseq_kit.ratelimit.Decision`; :meth:`enforce` raises
    :class:`~tracseq_kit.RateLimitExceededError` instead of returning a rejection.

    ``store`` is a :class:`MemoryStore` (the default) or a :class:`RedisStore`. With
    Redis, ``on_failure`` applies while Redis is unreachable: the switch happens within
    the store's timeout, later decisions do not wait on Redis for ``retry_interval``
    seconds, then one decision tries Redis again; every switch is logged and counted
    in ``tracseq_ratelimit_store_switches_total``.

    Raises :class:`~tracseq_kit.ConfigurationError` for no policies, duplicate names,
    or a cost above a policy's capacity.
    """

    def __init__(
        self,
        policies: Sequence[Policy],
        *,
        store: MemoryStore | RedisStore | None = None,
        on_failure: FailurePolicy = "local",
        retry_interval: float = 1.0,
        name: str = "default",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        policies = tuple(policies)
        if not policies:
            raise ConfigurationError("a rate limiter needs at least one policy")
        names = [p.name for p in policies]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"policy names must be unique, got {names}")
        if on_failure not in ("open", "closed", "local"):
            raise ConfigurationError(f"on_failure must be open, closed or local: {on_failure!r}")
        self.name = name
        self.policies = policies
        self._capacity = min(p.capacity for p in policies)
        self.store = store if store is not None else MemoryStore(clock=clock)
        self._memory = self.store if isinstance(self.store, MemoryStore) else None
        self._on_failure = on_failure
        self._fallback = MemoryStore(clock=clock) if on_failure == "local" else None
        self._retry_interval = retry_interval
        self._clock = clock
        self._down_until = 0.0
        self.degraded = False
        self.allowed = 0
        self.rejected = 0
        self.switches = 0
        # Fast path: one GCRA policy in memory, decided inline without a call chain.
        self._fast: tuple[dict[str, float], float, float, str, int, float] | None = None
        if self._memory is not None and len(policies) == 1 and isinstance(policies[0], GCRA):
            p = policies[0]
            self._fast = (
                self._memory.gcra_states(p),
                p.interval,
                p.capacity * p.interval,
                p.name,
                p.capacity,
                p.period,
            )
        self._bool_counts = [0, 0]
        self.try_acquire: Callable[[str], bool] = self._make_try_acquire()
        """``try_acquire(key) -> bool``: consume one unit if allowed, without a result
        object — the shape of ``limits``' ``hit()``, for the hottest paths. Decisions are
        counted like :meth:`acquire`'s."""
        _track(self)

    def _make_try_acquire(self) -> Callable[[str], bool]:
        fast = self._fast
        if fast is None:
            return lambda key: self.acquire_nowait(key).allowed
        memory = self._memory
        assert memory is not None
        states, interval, tolerance = fast[0], fast[1], fast[2]
        clock = self._clock
        counts = self._bool_counts  # [allowed, rejected], read at scrape time

        # A closure over locals: no attribute lookups and no result object per decision.
        def try_acquire(key: str) -> bool:
            now = clock()
            if now >= memory.next_sweep:
                memory.sweep()
            tat = states.get(key, now)
            if tat < now:
                tat = now
            new_tat = tat + interval
            if new_tat - tolerance - now > _EPS:
                counts[1] += 1
                return False
            states[key] = new_tat
            counts[0] += 1
            return True

        return try_acquire

    def acquire_nowait(self, key: str, *, cost: int = 1) -> Decision:
        """:meth:`acquire` without awaiting, for a limiter with the in-memory store.

        Raises :class:`~tracseq_kit.ConfigurationError` with a Redis store (which needs
        a round trip) or an invalid cost.
        """
        fast = self._fast
        if fast is not None and cost == 1:
            now = self._clock()
            memory = self._memory
            if now >= memory.next_sweep:  # type: ignore[union-attr]
                memory.sweep()  # type: ignore[union-attr]
            states, interval, tolerance, name, capacity, period = fast
            tat = states.get(key, now)
            if tat < now:
                tat = now
            new_tat = tat + interval
            allow_at = new_tat - tolerance
            if allow_at - now > _EPS:
                self.rejected += 1
                return _new(Decision, (False, 0, tat - now, allow_at - now, name, capacity, period))
            states[key] = new_tat
            self.allowed += 1
            remaining = int((now - allow_at) / interval + 1e-9)
            return _new(Decision, (True, remaining, new_tat - now, 0.0, name, capacity, period))
        if self._memory is None:
            raise ConfigurationError("acquire_nowait needs the in-memory store")
        if not 0 < cost <= self._capacity:
            raise ConfigurationError(
                f"cost must be between 1 and the smallest capacity ({self._capacity}), got {cost}"
            )
        d = self._memory.decide(key, self.policies, cost, True)
        if d.allowed:
            self.allowed += 1
        else:
            self.rejected += 1
        return d

    async def acquire(self, key: str, *, cost: int = 1) -> Decision:
        """Consume ``cost`` units for ``key`` if every policy admits it."""
        if self._memory is not None:
            return self.acquire_nowait(key, cost=cost)
        d = await self._decide(key, cost, True)
        if d.allowed:
            self.allowed += 1
        else:
            self.rejected += 1
        return d

    async def check(self, key: str, *, cost: int = 1) -> Decision:
        """Report what :meth:`acquire` would decide, consuming nothing."""
        return await self._decide(key, cost, False)

    async def enforce(self, key: str, *, cost: int = 1) -> Decision:
        """Like :meth:`acquire`, but raise RateLimitExceededError when rejected."""
        d = await self.acquire(key, cost=cost)
        if not d.allowed:
            raise RateLimitExceededError(d.policy, retry_after=d.retry_after)
        return d

    async def _decide(self, key: str, cost: int, consume: bool) -> Decision:
        if not 0 < cost <= self._capacity:
            raise ConfigurationError(
                f"cost must be between 1 and the smallest capacity ({self._capacity}), got {cost}"
            )
        store = self.store
        if isinstance(store, MemoryStore):
            return store.decide(key, self.policies, cost, consume)
        now = self._clock()
        if self.degraded and now < self._down_until:
            return self._degraded(key, cost, consume)
        try:
            d = await store.decide(key, self.policies, cost, consume)
        except DependencyUnavailableError as exc:
            self._down_until = now + self._retry_interval
            if not self.degraded:
                self.degraded = True
                self.switches += 1
                logger.warning(
                    "rate limiter %r: Redis unreachable (%s); failing %s",
                    self.name,
                    exc,
                    self._on_failure,
                )
            return self._degraded(key, cost, consume)
        if self.degraded:
            self.degraded = False
            self.switches += 1
            logger.warning("rate limiter %r: Redis reachable again", self.name)
        return d

    def _degraded(self, key: str, cost: int, consume: bool) -> Decision:
        if self._fallback is not None:
            return self._fallback.decide(key, self.policies, cost, consume)
        p = self.policies[0]
        if self._on_failure == "open":
            return Decision(True, p.capacity, 0.0, 0.0, p.name, p.capacity, p.period)
        return Decision(
            False, 0, self._retry_interval, self._retry_interval, p.name, p.capacity, p.period
        )


_limiters: weakref.WeakSet[RateLimiter] = weakref.WeakSet()
_registered: weakref.WeakSet[CollectorRegistry] = weakref.WeakSet()


class _LimiterCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "tracseq_ratelimit_decisions", "Rate-limit decisions", labels=["limiter", "result"]
        )
        switches = CounterMetricFamily(
            "tracseq_ratelimit_store_switches",
            "Switches between the Redis store and the failure policy",
            labels=["limiter"],
        )
        degraded = GaugeMetricFamily(
            "tracseq_ratelimit_degraded",
            "1 while the limiter applies its failure policy",
            labels=["limiter"],
        )
        for lim in list(_limiters):
            extra_ok, extra_no = lim._bool_counts
            decisions.add_metric([lim.name, "allowed"], lim.allowed + extra_ok)
            decisions.add_metric([lim.name, "rejected"], lim.rejected + extra_no)
            switches.add_metric([lim.name], lim.switches)
            degraded.add_metric([lim.name], 1 if lim.degraded else 0)
        yield decisions
        yield switches
        yield degraded

    def describe(self) -> Iterator[Metric]:
        return iter(())


def _track(limiter: RateLimiter) -> None:
    _limiters.add(limiter)
    registry = metrics_registry()
    if registry not in _registered:
        registry.register(_LimiterCollector())
        _registered.add(registry)
