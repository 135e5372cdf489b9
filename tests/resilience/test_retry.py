"""Retry: backoff with full jitter, budgets, Retry-After, cancellation."""

from __future__ import annotations

import asyncio

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracseq_kit import CircuitOpenError, ConfigurationError, DependencyUnavailableError
from tracseq_kit.resilience import ManualClock, Retry, RetryBudget, deadline, deterministic_mode

pytestmark = pytest.mark.anyio


class Flaky:
    def __init__(self, failures: int, exc: Exception | None = None) -> None:
        self.failures = failures
        self.calls = 0
        self.exc = exc or DependencyUnavailableError("down")

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return "ok"


def make(clock: ManualClock, sleeps: list[float], **options: object) -> Retry:
    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    return Retry(clock=clock, sleep=sleep, rng=lambda lo, hi: hi, **options)  # type: ignore[arg-type]


async def test_retries_retriable_errors_until_success() -> None:
    sleeps: list[float] = []
    retry = make(ManualClock(), sleeps, attempts=4, initial_delay=0.1, multiplier=2)
    fn = Flaky(3)
    assert await retry.call(fn) == "ok"
    assert fn.calls == 4
    assert sleeps == pytest.approx([0.1, 0.2, 0.4])


async def test_gives_up_after_attempts_with_the_last_error() -> None:
    retry = make(ManualClock(), [], attempts=3)
    fn = Flaky(10)
    with pytest.raises(DependencyUnavailableError) as info:
        await retry.call(fn)
    assert fn.calls == 3
    assert "gave up after 3 attempts" in "".join(info.value.__notes__)


async def test_does_not_retry_errors_not_flagged_retriable() -> None:
    retry = make(ManualClock(), [], attempts=5)
    fn = Flaky(1, ValueError("bad input"))
    with pytest.raises(ValueError):
        await retry.call(fn)
    assert fn.calls == 1


async def test_custom_predicate() -> None:
    retry = make(ManualClock(), [], attempts=5, retry_on=lambda e: isinstance(e, KeyError))
    fn = Flaky(2, KeyError("k"))
    assert await retry.call(fn) == "ok"


async def test_honours_retry_after_up_to_a_cap() -> None:
    sleeps: list[float] = []
    retry = make(ManualClock(), sleeps, attempts=3, initial_delay=0.01, max_retry_after=5)
    assert await retry.call(Flaky(1, CircuitOpenError("x", remaining=2.5))) == "ok"
    assert sleeps == [2.5]
    fn = Flaky(1, CircuitOpenError("x", remaining=60))
    with pytest.raises(CircuitOpenError):
        await retry.call(fn)
    assert fn.calls == 1


async def test_total_timeout_stops_retrying() -> None:
    retry = make(ManualClock(), [], attempts=100, initial_delay=1, multiplier=1, total_timeout=3.5)
    fn = Flaky(100)
    with pytest.raises(DependencyUnavailableError):
        await retry.call(fn)
    assert fn.calls == 4  # waits of 1s at 0, 1, 2; a 4th wait would pass 3.5s


async def test_never_retries_cancellation() -> None:
    calls = 0

    async def slow() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)

    retry = Retry(attempts=5, initial_delay=0)
    with anyio.move_on_after(0.01):
        await retry.call(slow)
    assert calls == 1


async def test_stops_before_the_deadline_passes() -> None:
    retry = Retry(attempts=10, initial_delay=5, multiplier=1, rng=lambda lo, hi: hi)
    fn = Flaky(10)
    with deadline(1.0), pytest.raises(DependencyUnavailableError) as info:
        await retry.call(fn)
    assert fn.calls == 1
    assert "deadline" in "".join(info.value.__notes__)


async def test_retry_budget_prevents_storms() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=0.1, min_per_second=0, window=10, clock=clock)
    retry = make(clock, [], attempts=3, initial_delay=0, budget=budget)
    retried = 0
    for _ in range(100):
        fn = Flaky(1)
        try:
            await retry.call(fn)
        except DependencyUnavailableError:
            pass
        retried += fn.calls - 1
    assert retried <= 10


async def test_deterministic_mode_does_not_sleep() -> None:
    with deterministic_mode() as clock:
        retry = Retry(
            attempts=5, initial_delay=100, max_delay=100, multiplier=1, rng=lambda lo, hi: hi
        )
        with anyio.fail_after(1):
            assert await retry.call(Flaky(4)) == "ok"
        assert clock.now == 400


async def test_decorator() -> None:
    fn = Flaky(1)

    @make(ManualClock(), [], attempts=2)
    async def wrapped() -> str:
        return await fn()

    assert await wrapped() == "ok"


def test_invalid_options() -> None:
    with pytest.raises(ConfigurationError):
        Retry(attempts=0)
    with pytest.raises(ConfigurationError):
        Retry(multiplier=0.5)
    with pytest.raises(ConfigurationError):
        RetryBudget(window=0)


@settings(max_examples=200)
@given(
    st.floats(0.001, 10),
    st.floats(1, 4),
    st.floats(0.01, 100),
    st.integers(1, 30),
    st.randoms(use_true_random=False),
)
def test_full_jitter_stays_within_the_exponential_cap(
    initial: float, multiplier: float, cap: float, n: int, rnd: object
) -> None:
    retry = Retry(
        initial_delay=initial,
        multiplier=multiplier,
        max_delay=cap,
        rng=rnd.uniform,  # type: ignore[attr-defined]
    )
    delay = retry.backoff(n)
    assert 0 <= delay <= min(cap, initial * multiplier ** (n - 1)) + 1e-9


@settings(max_examples=100)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=200), st.floats(0, 1))
def test_retry_budget_never_exceeds_ratio_plus_floor(failures: list[int], ratio: float) -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=ratio, min_per_second=1, window=10, clock=clock)
    requests = retries = 0
    for wanted in failures:
        budget.record_request()
        requests += 1
        for _ in range(wanted):
            if budget.try_spend():
                retries += 1
        clock.advance(0.001)
    assert retries <= 10 + ratio * requests
