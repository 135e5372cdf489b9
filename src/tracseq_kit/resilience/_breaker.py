"""The circuit breaker: closed, open, half-open, forced-open and disabled.

Design notes (why the code looks like this):

- The closed-state success path is a handful of attribute reads and one ring-buffer
  write. There is no lock: asyncio runs one task at a time and every state change is a
  synchronous section, so no await ever splits a read-modify-write.
- Every call carries the *generation* it was admitted in. A transition bumps the
  generation, so results of calls that started before it (late results) are dropped
  without touching any counter.
- Rates are only evaluated after a failure or a slow call: a fast success can lower a
  rate but never raise it.
- Metrics are plain integer counters read by a Prometheus collector at scrape time.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import functools
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, TypeVar

from tracseq_kit._exceptions import CircuitOpenError, ConfigurationError
from tracseq_kit.resilience._clock import Clock, default_clock
from tracseq_kit.resilience._window import (
    FAILURE,
    SLOW_SUCCESS,
    SUCCESS,
    CountWindow,
    TimeWindow,
)

if TYPE_CHECKING:
    from tracseq_kit.resilience._fleet import RedisBreakerStore, _FleetLink

__all__ = ["BreakerState", "BreakerStats", "CircuitBreaker", "Permit", "StateTransition"]

logger = logging.getLogger("tracseq_kit.resilience")

_new_tuple = tuple.__new__

P = ParamSpec("P")
T = TypeVar("T")


class BreakerState(enum.Enum):
    """The states of a :class:`CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"


_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_FORCED_OPEN = BreakerState.FORCED_OPEN
_DISABLED = BreakerState.DISABLED


@dataclass(frozen=True, slots=True)
class StateTransition:
    """One state change of a breaker, as passed to listeners."""

    breaker: str
    from_state: BreakerState
    to_state: BreakerState
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class BreakerStats:
    """Counters of a breaker since it was created (a snapshot)."""

    state: BreakerState
    successes: int
    failures: int
    slow_calls: int
    ignored: int
    rejected: int
    late_results: int
    transitions: int


class Permit(NamedTuple):
    """Proof that a call was admitted, for :meth:`CircuitBreaker.record`.

    It remembers the generation the call was admitted in (so late results are
    dropped) and when it started (for slow-call detection).
    """

    generation: int
    started: float


Listener = Callable[[StateTransition], object]

# Per-task stack of (generation, start) for ``async with breaker:``.
_entered: contextvars.ContextVar[tuple[int, float, Any] | None] = contextvars.ContextVar(
    "tracseq_breaker_entered", default=None
)


class CircuitBreaker:
    """Stops calling a failing dependency, then probes it before trusting it again.

    Use it as ``async with breaker:``, as a decorator (``@breaker``) or through
    ``await breaker.call(fn, *args)``.

    Closed: calls run and their outcomes fill a sliding window, count-based (the last
    ``window_size`` calls) or, with ``window_seconds``, time-based (bucketed into
    ``window_buckets``). Once the window holds at least ``minimum_calls`` and the
    failure rate reaches ``failure_rate_threshold`` or the slow-call rate (calls lasting
    at least ``slow_call_duration``) reaches ``slow_call_rate_threshold``, it opens.

    Open: calls are rejected with :class:`~tracseq_kit.CircuitOpenError`, whose
    ``remaining`` says when the next probe is allowed. It stays open for
    ``wait_duration`` seconds, or ``backoff(n)`` for the n-th consecutive opening.

    Half-open: exactly ``half_open_probes`` probe calls are admitted; others are
    rejected. Once all probes have finished, the breaker closes or re-opens from those
    outcomes alone, using the same thresholds. If no decision is reached within
    ``max_half_open_wait`` seconds (a probe hangs), it re-opens.

    Classification: an exception counts as a failure when it is an instance of
    ``failure_on`` and not of ``ignore`` (and ``is_failure(exc)``, if given, agrees).
    Ignored exceptions change no counter. A returned value counts as a failure when
    ``result_is_failure(value)`` is true (e.g. an HTTP 5xx response). Cancellation is
    never counted and always propagates; a cancelled or ignored probe frees its slot.

    Listeners (``add_listener``) receive one :class:`StateTransition` per transition; a
    listener that raises is logged and changes nothing. Operators can
    :meth:`force_open`, :meth:`disable` and :meth:`reset` a breaker.

    With ``store=RedisBreakerStore(...)`` the state is shared by every process using
    the same name and store (fleet mode): see :class:`RedisBreakerStore`.

    Raises :class:`~tracseq_kit.ConfigurationError` for invalid options.
    """

    __slots__ = (
        "__weakref__",
        "_backoff",
        "_clock",
        "_consecutive_opens",
        "_failure_on",
        "_failure_rate",
        "_fast",
        "_fleet",
        "_generation",
        "_half_open_since",
        "_ignore",
        "_is_failure",
        "_listeners",
        "_max_half_open_wait",
        "_minimum_calls",
        "_n_failure",
        "_n_fleet_fallbacks",
        "_n_ignored",
        "_n_late",
        "_n_rejected",
        "_n_slow",
        "_n_success",
        "_n_transitions",
        "_open_until",
        "_pending",
        "_probe_done",
        "_probe_failures",
        "_probe_slow",
        "_probes",
        "_probes_admitted",
        "_result_is_failure",
        "_slow_duration",
        "_slow_rate",
        "_state",
        "_timed",
        "_wait_duration",
        "_window",
        "name",
    )

    def __init__(
        self,
        name: str,
        *,
        failure_rate_threshold: float = 0.5,
        slow_call_rate_threshold: float = 1.0,
        slow_call_duration: float | None = None,
        window_size: int = 100,
        window_seconds: float | None = None,
        window_buckets: int = 10,
        minimum_calls: int = 10,
        wait_duration: float = 30.0,
        backoff: Callable[[int], float] | None = None,
        half_open_probes: int = 3,
        max_half_open_wait: float = 60.0,
        failure_on: tuple[type[BaseException], ...] = (Exception,),
        ignore: tuple[type[BaseException], ...] = (),
        is_failure: Callable[[BaseException], bool] | None = None,
        result_is_failure: Callable[[Any], bool] | None = None,
        clock: Clock | None = None,
        store: RedisBreakerStore | None = None,
    ) -> None:
        if not name:
            raise ConfigurationError("a circuit breaker needs a non-empty name")
        for label, rate in (
            ("failure_rate_threshold", failure_rate_threshold),
            ("slow_call_rate_threshold", slow_call_rate_threshold),
        ):
            if not 0.0 < rate <= 1.0:
                raise ConfigurationError(f"{label} must be in (0, 1], got {rate!r}")
        if window_size < 1 or window_buckets < 1:
            raise ConfigurationError("window_size and window_buckets must be at least 1")
        if window_seconds is not None and window_seconds <= 0:
            raise ConfigurationError(f"window_seconds must be positive, got {window_seconds!r}")
        if minimum_calls < 1:
            raise ConfigurationError(f"minimum_calls must be at least 1, got {minimum_calls!r}")
        if half_open_probes < 1:
            raise ConfigurationError(
                f"half_open_probes must be at least 1, got {half_open_probes!r}"
            )
        if wait_duration < 0 or max_half_open_wait <= 0:
            raise ConfigurationError("wait_duration must be >= 0 and max_half_open_wait > 0")
        if slow_call_duration is not None and slow_call_duration <= 0:
            raise ConfigurationError("slow_call_duration must be positive")
        self.name = name
        self._failure_rate = failure_rate_threshold
        self._slow_rate = slow_call_rate_threshold
        self._slow_duration = slow_call_duration
        self._window: CountWindow | TimeWindow = (
            CountWindow(window_size)
            if window_seconds is None
            else TimeWindow(window_seconds, window_buckets)
        )
        self._timed = slow_call_duration is not None or window_seconds is not None
        self._minimum_calls = minimum_calls
        self._wait_duration = wait_duration
        self._backoff = backoff
        self._probes = half_open_probes
        self._max_half_open_wait = max_half_open_wait
        self._failure_on = failure_on
        self._ignore = ignore
        self._is_failure = is_failure
        self._result_is_failure = result_is_failure
        self._clock = clock if clock is not None else default_clock()
        self._listeners: list[Listener] = []
        self._state = _CLOSED
        self._generation = 0
        self._open_until = 0.0
        self._half_open_since = 0.0
        self._consecutive_opens = 0
        self._probes_admitted = 0
        self._probe_done = 0
        self._probe_failures = 0
        self._probe_slow = 0
        self._n_success = self._n_failure = self._n_slow = self._n_ignored = 0
        self._n_rejected = self._n_late = self._n_transitions = 0
        self._n_fleet_fallbacks = 0
        self._fleet: _FleetLink | None = None
        self._pending = 0
        self._fast = False
        if store is not None:
            if window_seconds is None:
                raise ConfigurationError(
                    "fleet mode shares a time-based window: pass window_seconds "
                    "together with store="
                )
            self._fleet = store._link(self, window_seconds, window_buckets)
        self._update_fast()
        from tracseq_kit.resilience._metrics import track

        track(self)

    def _update_fast(self) -> None:
        # The fast path: closed, local, count-based, no result or slow classification.
        # Successes on it are only counted (``_pending``) and written into the window
        # when something needs the window (a failure, a transition, a snapshot).
        self._fast = (
            self._state is _CLOSED
            and self._fleet is None
            and self._result_is_failure is None
            and self._slow_duration is None
            and isinstance(self._window, CountWindow)
        )

    def _flush(self) -> None:
        pending = self._pending
        if pending:
            self._pending = 0
            self._n_success += pending
            window = self._window
            if isinstance(window, CountWindow):
                window.record_successes(pending)

    # ------------------------------------------------------------------ public API

    @property
    def local(self) -> bool:
        """Whether the state lives in this process only (no ``store``): then the
        ``*_nowait`` twins of :meth:`admit`, :meth:`record` and :meth:`release` work."""
        return self._fleet is None

    @property
    def state(self) -> BreakerState:
        """The current state (time-driven transitions are applied first)."""
        if self._state is _OPEN or self._state is _HALF_OPEN:
            self._refresh(self._clock())
        return self._state

    def stats(self) -> BreakerStats:
        """A snapshot of the breaker's counters."""
        return BreakerStats(
            state=self._state,
            successes=self._n_success + self._pending,
            failures=self._n_failure,
            slow_calls=self._n_slow,
            ignored=self._n_ignored,
            rejected=self._n_rejected,
            late_results=self._n_late,
            transitions=self._n_transitions,
        )

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(StateTransition)`` on every transition (exceptions are logged)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``; raises ValueError if it was not added."""
        self._listeners.remove(listener)

    def force_open(self) -> None:
        """Reject every call until :meth:`reset` (operator action)."""
        self._operator(_FORCED_OPEN)

    def disable(self) -> None:
        """Admit every call and record nothing until :meth:`reset` (operator action)."""
        self._operator(_DISABLED)

    def reset(self) -> None:
        """Return to closed with an empty window (operator action)."""
        self._operator(_CLOSED)

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``await fn(*args, **kwargs)`` under the breaker and return its result.

        Raises :class:`~tracseq_kit.CircuitOpenError` without calling ``fn`` when the
        breaker rejects the call; otherwise whatever ``fn`` raises, unchanged.
        """
        if self._fast:
            gen = self._generation
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                await self._on_error(gen, 0.0, exc)
                raise
            if gen == self._generation:
                self._pending += 1
            else:
                self._n_success += 1
                self._n_late += 1
            return result
        fleet = self._fleet
        shared_closed = fleet is not None and self._state is _CLOSED
        maybe = fleet.admit_closed() if shared_closed else None  # type: ignore[union-attr]
        gen = maybe if maybe is not None else await self._admit()
        start = self._clock() if self._timed else 0.0
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            await self._on_error(gen, start, exc)
            raise
        if (
            shared_closed
            and gen == self._generation
            and self._result_is_failure is None
            and self._slow_duration is None
            and fleet.healthy  # type: ignore[union-attr]
        ):
            # Fleet mode's closed-state success, without the coroutine chain.
            self._n_success += 1
            self._window.record(SUCCESS, start)
            fleet.count(SUCCESS)  # type: ignore[union-attr]
            return result
        await self._on_result(gen, start, result)
        return result

    async def admit(self) -> Permit:
        """Admit one call made outside :meth:`call` (e.g. by a proxy) or raise.

        Raises :class:`~tracseq_kit.CircuitOpenError` when the call must not be made.
        Report the outcome with :meth:`record`, or :meth:`release` if it should not
        count (the client went away, the error was the caller's).
        """
        gen = self._generation if self._fast else await self._admit()
        # tuple.__new__ skips the NamedTuple's Python-level __new__ (per proxied request)
        return _new_tuple(Permit, (gen, self._clock() if self._timed else 0.0))

    async def record(self, permit: Permit, *, ok: bool) -> None:
        """Count the outcome of a call admitted by :meth:`admit`."""
        if ok and self._fast and permit.generation == self._generation:
            self._pending += 1
            return
        await self._record(permit.generation, permit.started, SUCCESS if ok else FAILURE)

    async def release(self, permit: Permit) -> None:
        """End an admitted call without counting it (frees a half-open probe slot)."""
        self._n_ignored += 1
        await self._release(permit.generation)

    # Synchronous twins of admit/record/release for blocking code (the sync client).
    # They work on local state only: a fleet breaker's state lives behind an async
    # Redis client.

    def admit_nowait(self) -> Permit:
        """Blocking-code twin of :meth:`admit`.

        Raises :class:`~tracseq_kit.CircuitOpenError` when the call must not be made,
        and :class:`~tracseq_kit.ConfigurationError` for a fleet breaker (``store=``),
        whose shared state needs the async API.
        """
        if self._fleet is not None:
            raise ConfigurationError(
                f"breaker {self.name!r} shares its state through Redis; use the async API"
            )
        gen = self._generation if self._fast else self._admit_local()
        return _new_tuple(Permit, (gen, self._clock() if self._timed else 0.0))

    def record_nowait(self, permit: Permit, *, ok: bool) -> None:
        """Blocking-code twin of :meth:`record` (local breakers only)."""
        if ok and self._fast and permit.generation == self._generation:
            self._pending += 1
            return
        self._record_local(permit.generation, permit.started, SUCCESS if ok else FAILURE)

    def release_nowait(self, permit: Permit) -> None:
        """Blocking-code twin of :meth:`release` (local breakers only)."""
        self._n_ignored += 1
        if permit.generation == self._generation and self._state is _HALF_OPEN:
            self._probes_admitted = max(0, self._probes_admitted - 1)

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an async function so every call goes through :meth:`call`."""

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return wrapper

    async def __aenter__(self) -> None:
        if self._fast:
            gen = self._generation
        else:
            gen = await self._admit()
        _entered.set((gen, self._clock() if self._timed else 0.0, _entered.get()))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entry = _entered.get()
        if entry is None:  # pragma: no cover - misuse: __aexit__ without __aenter__
            return
        gen, start, outer = entry
        _entered.set(outer)
        if exc is None and self._fast and gen == self._generation:
            self._pending += 1
            return
        if exc is None:  # no result to classify here: result_is_failure is for call()
            await self._record(gen, start, SUCCESS)
        else:
            await self._on_error(gen, start, exc)

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self._state.value}>"

    # ------------------------------------------------------------------ admission

    async def _admit(self) -> int:
        if self._fleet is not None:
            return await self._fleet.admit()
        return self._admit_local()

    def _admit_local(self) -> int:
        state = self._state
        if state is _CLOSED or state is _DISABLED:
            return self._generation
        now = self._clock()
        self._refresh(now)
        state = self._state
        if state is _CLOSED:
            return self._generation
        if state is _HALF_OPEN and self._probes_admitted < self._probes:
            self._probes_admitted += 1
            return self._generation
        self._n_rejected += 1
        if state is _OPEN:
            remaining = self._open_until - now
        elif state is _FORCED_OPEN:
            remaining = self._wait_duration
        else:
            remaining = 0.0
        raise CircuitOpenError(self.name, remaining=remaining, state=state.value)

    def _refresh(self, now: float) -> None:
        """Apply the transitions that time alone causes (local state only)."""
        if self._fleet is not None and self._fleet.healthy:
            return
        if self._state is _OPEN and now >= self._open_until:
            self._transition(_HALF_OPEN, now, "wait duration elapsed")
        elif self._state is _HALF_OPEN and now - self._half_open_since >= self._max_half_open_wait:
            self._transition(_OPEN, now, "no decision within max_half_open_wait")

    # ------------------------------------------------------------------ outcomes

    def _classify_error(self, exc: BaseException) -> bool | None:
        """True: failure; False: success; None: not counted."""
        if isinstance(exc, asyncio.CancelledError) or not isinstance(exc, Exception):
            return None
        if self._ignore and isinstance(exc, self._ignore):
            return None
        if not isinstance(exc, self._failure_on):
            return False
        if self._is_failure is not None and not self._is_failure(exc):
            return False
        return True

    async def _on_error(self, gen: int, start: float, exc: BaseException) -> None:
        verdict = self._classify_error(exc)
        if verdict is None:
            self._n_ignored += 1
            await self._release(gen)
        else:
            await self._record(gen, start, FAILURE if verdict else SUCCESS)

    async def _on_result(self, gen: int, start: float, result: object) -> None:
        failed = self._result_is_failure is not None and self._result_is_failure(result)
        await self._record(gen, start, FAILURE if failed else SUCCESS)

    async def _release(self, gen: int) -> None:
        if gen == self._generation and self._state is _HALF_OPEN:
            self._probes_admitted = max(0, self._probes_admitted - 1)
            if self._fleet is not None and self._fleet.healthy:
                await self._fleet.release()

    async def _record(self, gen: int, start: float, outcome: int) -> None:
        fleet = self._fleet
        if fleet is None or not fleet.healthy:
            self._record_local(gen, start, outcome)
            return
        now = self._clock() if self._timed else 0.0
        outcome = self._count(gen, start, outcome, now)
        if outcome < 0:
            return
        if self._state is _CLOSED:
            self._flush()
            self._window.record(outcome, now)
            fleet.count(outcome)
        elif self._state is _HALF_OPEN:
            await fleet.probe_result(outcome)

    def _record_local(self, gen: int, start: float, outcome: int) -> None:
        """:meth:`_record` on local state (no fleet store, or an unhealthy one)."""
        now = self._clock() if self._timed else 0.0
        outcome = self._count(gen, start, outcome, now)
        if outcome < 0:
            return
        if self._state is _CLOSED:
            self._flush()
            self._window.record(outcome, now)
            if outcome != SUCCESS:
                self._evaluate(now if self._timed else self._clock())
        elif self._state is _HALF_OPEN:
            self._probe_outcome(outcome, self._clock())

    def _count(self, gen: int, start: float, outcome: int, now: float) -> int:
        """Update the counters; return the outcome (slow flag added), or -1 if late."""
        if self._slow_duration is not None and now - start >= self._slow_duration:
            outcome |= SLOW_SUCCESS
            self._n_slow += 1
        if outcome & FAILURE:
            self._n_failure += 1
        else:
            self._n_success += 1
        if gen != self._generation:
            self._n_late += 1
            return -1
        return outcome

    def _evaluate(self, now: float) -> None:
        totals = self._window.totals(now)
        if totals.calls < self._minimum_calls:
            return
        if totals.failures >= self._failure_rate * totals.calls:
            self._transition(_OPEN, now, f"failure rate {totals.failures}/{totals.calls}")
        elif totals.slow >= self._slow_rate * totals.calls:
            self._transition(_OPEN, now, f"slow-call rate {totals.slow}/{totals.calls}")

    def _probe_outcome(self, outcome: int, now: float) -> None:
        self._probe_done += 1
        self._probe_failures += outcome & FAILURE
        self._probe_slow += outcome >> 1
        if self._probe_done < self._probes:
            return
        k = self._probe_done
        if self._probe_failures >= self._failure_rate * k:
            self._transition(_OPEN, now, f"probes failed {self._probe_failures}/{k}")
        elif self._probe_slow >= self._slow_rate * k:
            self._transition(_OPEN, now, f"probes slow {self._probe_slow}/{k}")
        else:
            self._transition(_CLOSED, now, f"probes succeeded {k - self._probe_failures}/{k}")

    # ------------------------------------------------------------------ transitions

    def _wait_for(self, opens: int) -> float:
        if self._backoff is None:
            return self._wait_duration
        wait = float(self._backoff(opens))
        return wait if math.isfinite(wait) and wait >= 0 else self._wait_duration

    def _operator(self, to: BreakerState) -> None:
        self._transition(to, self._clock(), "operator")
        if self._fleet is not None:
            self._fleet.push_operator(to)

    def _transition(
        self,
        to: BreakerState,
        now: float,
        reason: str,
        *,
        open_for: float | None = None,
    ) -> None:
        self._flush()
        frm = self._state
        self._state = to
        self._generation += 1
        self._n_transitions += 1
        if to is _OPEN:
            self._consecutive_opens += 1
            wait = self._wait_for(self._consecutive_opens) if open_for is None else open_for
            self._open_until = now + wait
        elif to is _HALF_OPEN:
            self._half_open_since = now
            self._probes_admitted = self._probe_done = 0
            self._probe_failures = self._probe_slow = 0
        elif to is _CLOSED:
            self._window.reset()
            self._consecutive_opens = 0
        self._update_fast()
        event = StateTransition(self.name, frm, to, now, reason)
        logger.info("circuit breaker %r: %s -> %s (%s)", self.name, frm.value, to.value, reason)
        for listener in tuple(self._listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("listener of circuit breaker %r raised", self.name)
