"""Circuit breaker semantics, with a manual clock (no sleeping)."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracseq_kit import CircuitOpenError, ConfigurationError
from tracseq_kit.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitBreakerRegistry,
    ManualClock,
    StateTransition,
    deterministic_mode,
)

pytestmark = pytest.mark.anyio


class Boom(Exception):
    pass


class Ignored(Exception):
    pass


async def ok() -> str:
    return "ok"


async def boom() -> None:
    raise Boom


def make(clock: ManualClock, **options: Any) -> CircuitBreaker:
    defaults: dict[str, Any] = dict(
        window_size=10,
        minimum_calls=4,
        failure_rate_threshold=0.5,
        wait_duration=5.0,
        half_open_probes=2,
        clock=clock,
    )
    defaults.update(options)
    return CircuitBreaker("dep", **defaults)


async def fail_n(breaker: CircuitBreaker, n: int) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            await breaker.call(boom)


async def open_breaker(breaker: CircuitBreaker) -> None:
    await fail_n(breaker, breaker._minimum_calls)
    assert breaker.state is BreakerState.OPEN


async def test_closed_passes_results_and_errors_through() -> None:
    b = make(ManualClock())
    assert await b.call(ok) == "ok"
    await fail_n(b, 1)
    assert b.state is BreakerState.CLOSED


async def test_async_with_counts_success_without_consulting_result_is_failure() -> None:
    b = make(ManualClock(), result_is_failure=lambda response: response.status_code >= 500)
    for _ in range(6):
        async with b:  # no result to look at: a block that returns is a success
            pass
    assert b.state is BreakerState.CLOSED
    with pytest.raises(Boom):
        async with b:
            raise Boom
    stats = b.stats()
    assert (stats.successes, stats.failures) == (6, 1)


async def test_never_opens_before_minimum_calls() -> None:
    b = make(ManualClock(), minimum_calls=5)
    await fail_n(b, 4)
    assert b.state is BreakerState.CLOSED
    await fail_n(b, 1)
    assert b.state is BreakerState.OPEN


async def test_open_rejects_with_remaining_time() -> None:
    clock = ManualClock()
    b = make(clock)
    await open_breaker(b)
    clock.advance(2.0)
    called = False

    async def spy() -> None:
        nonlocal called
        called = True

    with pytest.raises(CircuitOpenError) as info:
        await b.call(spy)
    assert not called
    assert info.value.remaining == pytest.approx(3.0)
    assert b.stats().rejected == 1


async def test_half_open_admits_exactly_k_and_closes_on_success() -> None:
    clock = ManualClock()
    b = make(clock, half_open_probes=2)
    await open_breaker(b)
    clock.advance(5.0)
    gate = anyio.Event()
    results: list[str] = []

    async def probe() -> str:
        await gate.wait()
        return "probe"

    async def run() -> None:
        results.append(await b.call(probe))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        tg.start_soon(run)
        await anyio.wait_all_tasks_blocked()
        assert b.state is BreakerState.HALF_OPEN
        with pytest.raises(CircuitOpenError) as info:
            await b.call(ok)
        assert info.value.state == "half_open"
        gate.set()
    assert results == ["probe", "probe"]
    assert b.state is BreakerState.CLOSED


async def test_half_open_reopens_when_probes_fail_with_backoff() -> None:
    clock = ManualClock()
    b = make(clock, half_open_probes=1, backoff=lambda n: 5.0 * n)
    await open_breaker(b)
    clock.advance(5.0)
    await fail_n(b, 1)
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError) as info:
        await b.call(ok)
    assert info.value.remaining == pytest.approx(10.0)


async def test_a_probe_that_never_returns_cannot_wedge_the_breaker() -> None:
    clock = ManualClock()
    b = make(clock, half_open_probes=1, max_half_open_wait=7.0)
    await open_breaker(b)
    clock.advance(5.0)
    hang = anyio.Event()
    async with anyio.create_task_group() as tg:

        async def hanging_probe() -> None:
            with pytest.raises(Boom):
                await b.call(_wait_then_fail, hang)

        tg.start_soon(hanging_probe)
        await anyio.wait_all_tasks_blocked()
        clock.advance(7.0)
        assert b.state is BreakerState.OPEN
        clock.advance(5.0)
        assert await b.call(ok) == "ok"  # a fresh probe
        hang.set()
    # The old probe's late failure changed nothing.
    assert b.stats().late_results == 1


async def _wait_then_fail(event: anyio.Event) -> None:
    await event.wait()
    raise Boom


async def test_ignored_errors_change_no_counters_and_free_probe_slots() -> None:
    clock = ManualClock()
    b = make(clock, ignore=(Ignored,), half_open_probes=1)

    async def ignored() -> None:
        raise Ignored

    for _ in range(20):
        with pytest.raises(Ignored):
            await b.call(ignored)
    assert b.state is BreakerState.CLOSED
    assert window_calls(b) == 0
    await open_breaker(b)
    clock.advance(5.0)
    with pytest.raises(Ignored):
        await b.call(ignored)
    assert b.state is BreakerState.HALF_OPEN
    assert await b.call(ok) == "ok"  # the slot was freed
    assert b.state is BreakerState.CLOSED


async def test_cancellation_is_never_counted_and_propagates() -> None:
    clock = ManualClock()
    b = make(clock, half_open_probes=1)
    for _ in range(10):
        with anyio.move_on_after(0):
            await b.call(anyio.sleep, 1)
    assert window_calls(b) == 0
    await open_breaker(b)
    clock.advance(5.0)
    task = asyncio.ensure_future(b.call(asyncio.sleep, 10))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.state is BreakerState.HALF_OPEN
    assert await b.call(ok) == "ok"
    assert b.state is BreakerState.CLOSED


async def test_result_classification_counts_bad_results_as_failures() -> None:
    b = make(ManualClock(), result_is_failure=lambda r: r >= 500)

    async def status(code: int) -> int:
        return code

    for _ in range(4):
        assert await b.call(status, 503) == 503
    assert b.state is BreakerState.OPEN


async def test_exceptions_outside_failure_on_count_as_success() -> None:
    b = make(ManualClock(), failure_on=(Boom,))
    for _ in range(10):
        with pytest.raises(KeyError):
            await b.call(_raise_key_error)
    assert b.state is BreakerState.CLOSED
    assert b.stats().successes == 10


async def _raise_key_error() -> None:
    raise KeyError("x")


async def test_slow_calls_open_the_breaker() -> None:
    clock = ManualClock()
    b = make(clock, slow_call_duration=1.0, slow_call_rate_threshold=0.5)

    async def slow() -> None:
        clock.advance(2.0)

    for _ in range(4):
        await b.call(slow)
    assert b.state is BreakerState.OPEN


async def test_time_window_forgets_old_failures() -> None:
    clock = ManualClock()
    b = make(clock, window_seconds=10.0, window_buckets=10, minimum_calls=4)
    await fail_n(b, 3)
    clock.advance(11.0)
    await fail_n(b, 3)
    assert b.state is BreakerState.CLOSED
    await fail_n(b, 1)
    assert b.state is BreakerState.OPEN


async def test_late_results_from_before_a_transition_change_nothing() -> None:
    clock = ManualClock()
    b = make(clock)
    gate = anyio.Event()

    async def slow_failure() -> None:
        await gate.wait()
        raise Boom

    async with anyio.create_task_group() as tg:

        async def straggler() -> None:
            with pytest.raises(Boom):
                await b.call(slow_failure)

        tg.start_soon(straggler)
        await anyio.wait_all_tasks_blocked()
        b.reset()
        gate.set()
    assert window_calls(b) == 0
    assert b.stats().late_results == 1


async def test_each_transition_emits_one_event_and_listener_errors_change_nothing() -> None:
    clock = ManualClock()
    b = make(clock, half_open_probes=1)
    events: list[StateTransition] = []

    def bad_listener(event: StateTransition) -> None:
        raise RuntimeError("listener bug")

    b.add_listener(bad_listener)
    b.add_listener(events.append)
    await open_breaker(b)
    clock.advance(5.0)
    await b.call(ok)
    assert [(e.from_state, e.to_state) for e in events] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]
    assert b.state is BreakerState.CLOSED


async def test_operator_states() -> None:
    b = make(ManualClock())
    b.force_open()
    with pytest.raises(CircuitOpenError) as info:
        await b.call(ok)
    assert info.value.state == "forced_open"
    b.disable()
    await fail_n(b, 50)
    assert b.state is BreakerState.DISABLED
    b.reset()
    assert await b.call(ok) == "ok"
    assert b.state is BreakerState.CLOSED


async def test_context_manager_and_decorator() -> None:
    b = make(ManualClock())

    @b
    async def decorated() -> str:
        return "d"

    assert await decorated() == "d"
    async with b:
        pass
    with pytest.raises(Boom):
        async with b:
            raise Boom
    with pytest.raises(Boom):
        async with b:
            async with b:  # nesting in one task
                raise Boom
    # The nested block counts once per level: 2 successes, 3 failures -> open.
    assert b.stats().failures == 3
    assert b.stats().successes == 2
    assert b.state is BreakerState.OPEN
    with pytest.raises(CircuitOpenError):
        async with b:
            pytest.fail("must not run")


async def test_registry_returns_one_breaker_per_name() -> None:
    registry = CircuitBreakerRegistry(minimum_calls=3)
    a = registry.get("templates")
    assert registry.get("templates") is a
    assert a._minimum_calls == 3
    assert "templates" in registry and len(registry) == 1
    registry.get("events", minimum_calls=7)
    with pytest.raises(ConfigurationError):
        registry.get("events", minimum_calls=8)


def test_invalid_options_raise_configuration_errors() -> None:
    for bad in (
        {"failure_rate_threshold": 0},
        {"failure_rate_threshold": 1.5},
        {"minimum_calls": 0},
        {"half_open_probes": 0},
        {"window_size": 0},
        {"window_seconds": -1.0},
    ):
        with pytest.raises(ConfigurationError):
            CircuitBreaker("x", **bad)
    with pytest.raises(ConfigurationError):
        CircuitBreaker("")


async def test_testing_mode_makes_breakers_deterministic() -> None:
    with deterministic_mode() as clock:
        b = CircuitBreaker("users-dep", minimum_calls=2, wait_duration=30.0)
        await fail_n(b, 2)
        assert b.state is BreakerState.OPEN
        clock.advance(30.0)
        assert await b.call(ok) == "ok"


# ---------------------------------------------------------------- properties

outcomes = st.lists(st.booleans(), min_size=1, max_size=200)


@settings(max_examples=200, deadline=None)
@given(outcomes, st.integers(1, 20), st.integers(1, 30), st.floats(0.05, 1.0))
def test_count_window_opens_exactly_when_rate_and_minimum_are_met(
    failures: list[bool], minimum: int, size: int, threshold: float
) -> None:
    """Model check: the breaker opens at the first call where the last ``size`` calls
    hold at least ``minimum`` calls and their failure rate reaches the threshold."""

    async def scenario() -> None:
        b = CircuitBreaker(
            "p",
            window_size=size,
            minimum_calls=minimum,
            failure_rate_threshold=threshold,
            clock=ManualClock(),
        )
        history: list[bool] = []
        for failed in failures:
            if b.state is BreakerState.OPEN:
                return
            history.append(failed)
            last = history[-size:]
            expected_open = failed and len(last) >= minimum and sum(last) >= threshold * len(last)
            try:
                await b.call(boom if failed else ok)
            except Boom:
                pass
            assert (b.state is BreakerState.OPEN) == expected_open

    anyio.run(scenario)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8), st.integers(0, 20))
def test_half_open_never_admits_more_than_k(k: int, extra: int) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        b = CircuitBreaker("p", minimum_calls=1, half_open_probes=k, wait_duration=1.0, clock=clock)
        with pytest.raises(Boom):
            await b.call(boom)
        clock.advance(1.0)
        gate = anyio.Event()
        admitted = 0
        rejected = 0

        async def probe() -> None:
            nonlocal admitted, rejected
            try:
                await b.call(gate.wait)
                admitted += 1
            except CircuitOpenError:
                rejected += 1

        async with anyio.create_task_group() as tg:
            for _ in range(k + extra):
                tg.start_soon(probe)
            await anyio.wait_all_tasks_blocked()
            gate.set()
        assert admitted == k
        assert rejected == extra
        assert b.state is BreakerState.CLOSED

    anyio.run(scenario)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=6), st.floats(0.1, 1.0))
def test_half_open_decision_uses_only_the_probe_outcomes(
    probe_failures: list[bool], threshold: float
) -> None:
    async def scenario() -> None:
        clock = ManualClock()
        k = len(probe_failures)
        b = CircuitBreaker(
            "p",
            minimum_calls=1,
            half_open_probes=k,
            wait_duration=1.0,
            failure_rate_threshold=threshold,
            clock=clock,
        )
        with pytest.raises(Boom):
            await b.call(boom)
        clock.advance(1.0)
        for failed in probe_failures:
            try:
                await b.call(boom if failed else ok)
            except Boom:
                pass
        reopened = sum(probe_failures) >= threshold * k
        assert b.state is (BreakerState.OPEN if reopened else BreakerState.CLOSED)

    anyio.run(scenario)


async def test_metrics_are_read_at_scrape_time() -> None:
    from prometheus_client import generate_latest

    from tracseq_kit.telemetry import metrics_registry

    b = CircuitBreaker("metrics-dep", minimum_calls=1, clock=ManualClock())
    await b.call(ok)
    await fail_n(b, 1)
    with pytest.raises(CircuitOpenError):
        await b.call(ok)
    text = generate_latest(metrics_registry()).decode()
    assert 'tracseq_circuit_breaker_state{breaker="metrics-dep"} 1.0' in text
    assert (
        'tracseq_circuit_breaker_calls_total{breaker="metrics-dep",outcome="success"} 1.0' in text
    )
    assert (
        'tracseq_circuit_breaker_calls_total{breaker="metrics-dep",outcome="rejected"} 1.0' in text
    )


def window_calls(b: CircuitBreaker) -> int:
    b._flush()
    return b._window.totals(0).calls


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=30), st.integers(1, 25))
def test_batched_successes_equal_one_by_one_recording(runs: list[int], size: int) -> None:
    from tracseq_kit.resilience._window import FAILURE as F
    from tracseq_kit.resilience._window import SUCCESS as S
    from tracseq_kit.resilience._window import CountWindow

    batched, single = CountWindow(size), CountWindow(size)
    for run in runs:
        batched.record_successes(run)
        for _ in range(run):
            single.record(S, 0.0)
        batched.record(F, 0.0)
        single.record(F, 0.0)
    assert batched.totals(0) == single.totals(0)
