"""Retry with exponential backoff and full jitter, time budgets and a retry budget."""

from __future__ import annotations

import functools
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.resilience._clock import Clock, ManualClock, default_clock
from tracseq_kit.resilience._deadline import remaining as deadline_remaining

__all__ = ["Retry", "RetryBudget"]

logger = logging.getLogger("tracseq_kit.resilience")

P = ParamSpec("P")
T = TypeVar("T")


def _is_retriable(exc: BaseException) -> bool:
    return bool(getattr(exc, "retriable", False))


def retry_after_hint(exc: BaseException) -> float | None:
    """The wait a server or breaker asked for, read from ``retry_after`` or ``remaining``."""
    for attr in ("retry_after", "remaining"):
        value = getattr(exc, attr, None)
        if isinstance(value, int | float) and value >= 0:
            return float(value)
    return None


class RetryBudget:
    """Caps retries at a fraction of requests, so an outage does not multiply load.

    Over the last ``window`` seconds, retries may be at most ``ratio`` times the number
    of first attempts, plus ``min_per_second`` retries per second so low traffic can
    still retry. Share one budget between all callers of a dependency.
    """

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        window: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        if ratio < 0 or min_per_second < 0 or window <= 0:
            raise ConfigurationError("ratio and min_per_second must be >= 0, window > 0")
        self._ratio = ratio
        self._floor = min_per_second * window
        self._n = 10
        self._width = window / self._n
        self._clock = clock if clock is not None else default_clock()
        self._epochs = [-1] * self._n
        self._requests = [0] * self._n
        self._retries = [0] * self._n
        # the slot record_request last counted in, and when it began and ends
        self._current, self._current_start, self._current_end = 0, 0.0, -1.0

    def _slot(self) -> int:
        epoch = int(self._clock() / self._width)
        i = epoch % self._n
        if self._epochs[i] != epoch:
            self._epochs[i] = epoch
            self._requests[i] = self._retries[i] = 0
        return i

    def _totals(self) -> tuple[int, int]:
        oldest = int(self._clock() / self._width) - self._n + 1
        requests = retries = 0
        for i in range(self._n):
            if self._epochs[i] >= oldest:
                requests += self._requests[i]
                retries += self._retries[i]
        return requests, retries

    def record_request(self) -> None:
        """Count a first attempt."""
        now = self._clock()
        if self._current_start <= now < self._current_end:  # the same slot as last time
            self._requests[self._current] += 1
            return
        i = self._slot()
        self._requests[i] += 1
        epoch = self._epochs[i]
        self._current, self._current_start = i, epoch * self._width
        self._current_end = self._current_start + self._width

    def try_spend(self) -> bool:
        """Count a retry and return True if the budget allows it, else return False."""
        i = self._slot()
        requests, retries = self._totals()
        if retries + 1 > self._floor + self._ratio * requests:
            return False
        self._retries[i] += 1
        return True


class Retry:
    """Calls a function again after retriable failures.

    Attempt n (n >= 1 retries) waits a random time in ``[0, min(max_delay, initial_delay
    * multiplier**(n-1))]`` (full jitter), or longer when the error asks for it
    (``retry_after`` / ``remaining`` attributes, e.g. a server's Retry-After or an open
    breaker) as long as that is at most ``max_retry_after``.

    An error is retried only if ``retry_on(exc)`` says so; by default, if it carries a
    true ``retriable`` attribute (every :class:`~tracseq_kit.TracSeqError` has one).
    Cancellation and non-``Exception`` errors are never retried. Retrying stops after
    ``attempts`` calls in all, when the next wait would pass ``total_timeout`` seconds
    since the first call or the current :func:`deadline`, or when the ``budget``
    refuses; the last error is then raised unchanged (with a note saying why).

    Use ``await retry.call(fn, *args)`` or ``@retry`` on an async function. In
    :func:`deterministic_mode` no real sleep happens.
    """

    def __init__(
        self,
        *,
        attempts: int = 3,
        initial_delay: float = 0.1,
        max_delay: float = 10.0,
        multiplier: float = 2.0,
        total_timeout: float | None = None,
        max_retry_after: float = 60.0,
        retry_on: Callable[[BaseException], bool] | None = None,
        budget: RetryBudget | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        rng: Callable[[float, float], float] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if attempts < 1:
            raise ConfigurationError(f"attempts must be at least 1, got {attempts!r}")
        if initial_delay < 0 or max_delay < 0 or multiplier < 1:
            raise ConfigurationError("delays must be >= 0 and multiplier >= 1")
        self.attempts = attempts
        self._initial = initial_delay
        self._max = max_delay
        self._multiplier = multiplier
        self._total = total_timeout
        self._max_retry_after = max_retry_after
        self._retry_on = retry_on if retry_on is not None else _is_retriable
        self._budget = budget
        self._clock = clock if clock is not None else default_clock()
        self._sleep = sleep if sleep is not None else self._default_sleep
        self._rng = rng if rng is not None else _random.uniform

    async def _default_sleep(self, seconds: float) -> None:
        if isinstance(self._clock, ManualClock):
            self._clock.advance(seconds)
            await anyio.lowlevel.checkpoint()
        else:
            await anyio.sleep(seconds)

    def backoff(self, retry_number: int) -> float:
        """The jittered wait before retry ``retry_number`` (1 for the first retry)."""
        cap = min(self._max, self._initial * self._multiplier ** (retry_number - 1))
        return self._rng(0.0, cap)

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``await fn(*args, **kwargs)``, retrying as configured; return its result."""
        start = self.begin()
        attempt = 1
        while True:
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                delay = self.next_delay(exc, attempt=attempt, started=start)
                if delay is None:
                    raise
            attempt += 1
            await self._sleep(delay)

    # The steps of :meth:`call`, for callers that run their own loop (the sync client).

    def begin(self) -> float:
        """Start one logical call: count it in the budget and return its start time."""
        if self._budget is not None:
            self._budget.record_request()
        return self._clock()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` between attempts (no real wait in :func:`deterministic_mode`)."""
        await self._sleep(seconds)

    def sleep_sync(self, seconds: float) -> None:
        """Blocking twin of :meth:`sleep`, for synchronous callers."""
        if isinstance(self._clock, ManualClock):
            self._clock.advance(seconds)
        else:
            time.sleep(seconds)

    def next_delay(self, exc: Exception, *, attempt: int, started: float) -> float | None:
        """The wait before retrying after attempt number ``attempt`` failed with ``exc``.

        ``started`` is what :meth:`begin` returned. Returns None when the call must
        not be retried (the error is not retriable, or an attempt, time, deadline or
        budget limit would be passed); the reason is added to ``exc`` as a note.
        """
        if not self._retry_on(exc):
            return None
        if attempt >= self.attempts:
            exc.add_note(f"gave up after {attempt} attempts")
            return None
        delay = self.backoff(attempt)
        hint = retry_after_hint(exc)
        if hint is not None:
            if hint > self._max_retry_after:
                exc.add_note(f"not retried: asked to wait {hint:.3f}s")
                return None
            delay = max(delay, hint)
        elapsed = self._clock() - started
        if self._total is not None and elapsed + delay > self._total:
            exc.add_note(f"not retried: total_timeout {self._total}s would pass")
            return None
        left = deadline_remaining()
        if left is not None and delay >= left:
            exc.add_note("not retried: the deadline would pass")
            return None
        if self._budget is not None and not self._budget.try_spend():
            exc.add_note("not retried: retry budget exhausted")
            logger.warning("retry refused by the retry budget: %s", type(exc).__name__)
            return None
        return delay

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an async function so every call goes through :meth:`call`."""

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return wrapper
