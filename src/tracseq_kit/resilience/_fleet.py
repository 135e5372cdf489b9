"""Fleet mode: circuit-breaker state shared by many processes through Redis.

Each process keeps a local mirror of the shared state so the closed-state success
path never waits on Redis: outcomes are counted locally and pushed in one Lua call per
``sync_interval`` (at once after a failure or slow call). Every transition happens
atomically inside the Lua script, with the Redis server's clock, so the fleet opens
together and admits at most ``half_open_probes`` probes in total.

When Redis cannot be reached within ``timeout`` the breaker carries on with its local
state (it has kept its own window all along), logs the switch, counts it in metrics,
and re-tries Redis every ``retry_interval``; Redis errors never reach the caller.
"""

from __future__ import annotations

import asyncio
import logging
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from tracseq_kit._exceptions import CircuitOpenError, ConfigurationError
from tracseq_kit.resilience._window import FAILURE

if TYPE_CHECKING:
    from tracseq_kit.resilience._breaker import BreakerState, CircuitBreaker

__all__ = ["RedisBreakerStore"]

logger = logging.getLogger("tracseq_kit.resilience")

_SCRIPT = files("tracseq_kit.resilience").joinpath("lua/breaker.lua").read_text()
_MAX_WAITS = 16


class RedisBreakerStore:
    """Where breakers keep shared state in fleet mode: a redis-py asyncio client.

    Pass it as ``CircuitBreaker(name, window_seconds=..., store=store)``. Breakers with
    the same name and ``prefix`` share one state. Creating a breaker never writes to
    Redis, so it never resets state other processes built up.

    ``timeout`` bounds every Redis call (the fallback to local state happens within
    it); ``sync_interval`` is how often successes are pushed; ``retry_interval`` is how
    often an unreachable Redis is tried again; shared keys expire after ``ttl`` seconds
    without use. Raises :class:`~tracseq_kit.ConfigurationError` for invalid options.
    """

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str = "tracseq:breaker",
        timeout: float = 0.1,
        sync_interval: float = 0.25,
        retry_interval: float = 1.0,
        ttl: float = 86_400.0,
    ) -> None:
        if timeout <= 0 or sync_interval <= 0 or retry_interval <= 0 or ttl <= 0:
            raise ConfigurationError(
                "timeout, sync_interval, retry_interval and ttl must be positive"
            )
        self.redis = redis
        self.prefix = prefix
        self.timeout = timeout
        self.sync_interval = sync_interval
        self.retry_interval = retry_interval
        self.ttl = ttl
        self._script = redis.register_script(_SCRIPT)
        self.fallbacks = 0

    def _link(self, breaker: CircuitBreaker, window_seconds: float, buckets: int) -> _FleetLink:
        return _FleetLink(self, breaker, window_seconds, buckets)


class _FleetLink:
    """One breaker's connection to its shared state."""

    def __init__(
        self,
        store: RedisBreakerStore,
        breaker: CircuitBreaker,
        window_seconds: float,
        buckets: int,
    ) -> None:
        self.store = store
        self.breaker = breaker
        self.healthy = True
        self._synced = False
        self._initial: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._next_sync = 0.0
        self._shared_gen = 0
        self._calls = self._failures = self._slow = 0
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        tag = f"{store.prefix}:{{{breaker.name}}}"
        self._keys = [f"{tag}:state", f"{tag}:window"]
        window_ms = max(1, int(window_seconds * 1000))
        waits = [int(breaker._wait_for(n) * 1000) for n in range(1, _MAX_WAITS + 1)]
        self._config: list[Any] = [
            window_ms,
            max(1, window_ms // buckets),
            breaker._minimum_calls,
            breaker._failure_rate,
            breaker._slow_rate,
            breaker._probes,
            int(breaker._max_half_open_wait * 1000),
            int(store.ttl * 1000),
            *waits,
        ]

    # ---------------------------------------------------------------- admission

    def admit_closed(self) -> int | None:
        """Admit a call while the shared state is closed, without awaiting.

        Returns the generation, or None when the slow path (:meth:`admit`) must decide:
        first call, Redis unhealthy, or not closed.
        """
        b = self.breaker
        if not (self._synced and self.healthy):
            return None
        now = b._clock()
        if now >= self._next_sync and self._task is None:
            self._next_sync = now + self.store.sync_interval
            self._task = self._spawn(self._sync())
        return b._generation

    async def admit(self) -> int:
        b = self.breaker
        if not self._synced:
            await self._first_sync()
        now = b._clock()
        if not self.healthy:
            if now >= self._retry_at:
                self._retry_at = now + self.store.retry_interval
                self._spawn(self._sync())
            return b._admit_local()
        from tracseq_kit.resilience._breaker import BreakerState

        state = b._state
        if state is BreakerState.CLOSED:
            if now >= self._next_sync and self._task is None:
                self._next_sync = now + self.store.sync_interval
                self._task = self._spawn(self._sync())
            return b._generation
        if state is BreakerState.DISABLED:
            return b._generation
        if state is BreakerState.OPEN and now < b._open_until:
            b._n_rejected += 1
            raise CircuitOpenError(b.name, remaining=b._open_until - now, state="open")
        reply = await self._eval("acquire", 0, 0, 0, 0)
        if reply is None:
            return b._admit_local()
        if reply[3]:
            return b._generation
        b._n_rejected += 1
        raise CircuitOpenError(b.name, remaining=reply[2] / 1000.0, state=b._state.value)

    async def _first_sync(self) -> None:
        """Learn the shared state before the first call: a new process must not admit
        calls while the fleet's breaker is open. Concurrent first callers share it."""
        if self._initial is None:
            self._initial = asyncio.get_running_loop().create_task(
                self._eval_quiet("sync", self._shared_gen, 0, 0, 0)
            )
        try:
            await asyncio.shield(self._initial)
        finally:
            if self._initial.done():
                self._synced = True

    # ---------------------------------------------------------------- outcomes

    def count(self, outcome: int) -> None:
        self._calls += 1
        if outcome != 0:
            self._failures += outcome & FAILURE
            self._slow += outcome >> 1
            if self._task is None:
                self._task = self._spawn(self._sync())

    async def probe_result(self, outcome: int) -> None:
        if await self._eval("result", self._shared_gen, outcome & FAILURE, outcome >> 1, 0) is None:
            self.breaker._probe_outcome(outcome, self.breaker._clock())

    async def release(self) -> None:
        await self._eval("release", self._shared_gen, 0, 0, 0)

    def push_operator(self, to: BreakerState) -> None:
        self._spawn(self._eval_quiet("set", to.value, 0, 0, 0))

    # ---------------------------------------------------------------- Redis

    async def _sync(self) -> None:
        calls, failures, slow = self._calls, self._failures, self._slow
        self._calls = self._failures = self._slow = 0
        try:
            await self._eval("sync", self._shared_gen, calls, failures, slow)
        finally:
            self._task = None
        if (self._failures or self._slow) and self.healthy:
            # Failures that arrived during the round trip go out at once too.
            self._task = self._spawn(self._sync())

    async def _eval_quiet(self, op: str, *args: Any) -> None:
        await self._eval(op, *args)

    async def _eval(self, op: str, *args: Any) -> list[Any] | None:
        """Run one operation; apply the shared state it returns; None if Redis failed."""
        try:
            reply = await asyncio.wait_for(
                self.store._script(keys=self._keys, args=[op, *args, *self._config]),
                self.store.timeout,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._unreachable(exc)
            return None
        state = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        parsed = [state, int(reply[1]), int(reply[2]), int(reply[3])]
        if not self.healthy:
            self.healthy = True
            logger.warning(
                "circuit breaker %r: Redis reachable again, using shared state",
                self.breaker.name,
            )
        self._apply(parsed)
        return parsed

    def _unreachable(self, exc: Exception) -> None:
        b = self.breaker
        self._retry_at = b._clock() + self.store.retry_interval
        if self.healthy:
            self.healthy = False
            self.store.fallbacks += 1
            b._n_fleet_fallbacks += 1
            logger.warning(
                "circuit breaker %r: Redis unreachable (%s: %s); using local state",
                b.name,
                type(exc).__name__,
                exc,
            )

    def _apply(self, reply: list[Any]) -> None:
        from tracseq_kit.resilience._breaker import BreakerState

        state_name, gen, remaining_ms, _ = reply
        b = self.breaker
        to = BreakerState(state_name)
        if gen == self._shared_gen and to is b._state:
            return
        self._shared_gen = gen
        self._calls = self._failures = self._slow = 0
        now = b._clock()
        if to is b._state:
            if to is BreakerState.OPEN:
                b._open_until = now + remaining_ms / 1000.0
            b._generation += 1
            return
        b._transition(to, now, "shared state", open_for=remaining_ms / 1000.0)

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
