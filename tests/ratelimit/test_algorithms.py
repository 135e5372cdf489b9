"""Policy invariants with a fake clock (in-memory store)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracseq_kit import ConfigurationError
from tracseq_kit.ratelimit import GCRA, MemoryStore, SlidingWindow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


gaps = st.lists(st.floats(0, 2, allow_nan=False), min_size=1, max_size=150)


@settings(max_examples=200)
@given(gaps, st.integers(1, 20), st.floats(0.5, 20), st.integers(1, 20), st.integers(1, 3))
def test_gcra_never_admits_more_than_burst_plus_rate_times_t(
    gaps: list[float], limit: int, period: float, burst: int, cost: int
) -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    policy = GCRA("p", limit, period, burst)
    admitted: list[tuple[float, int]] = []
    for gap in gaps:
        clock.now += gap
        if cost <= burst and store.decide("k", [policy], cost, True).allowed:
            admitted.append((clock.now, cost))
    rate = limit / period
    for i, (start, _) in enumerate(admitted):
        total = 0
        for t, c in admitted[i:]:
            total += c
            assert total <= burst + rate * (t - start) + 1e-6


@settings(max_examples=200)
@given(
    st.integers(1, 50),
    st.floats(0.5, 60),
    st.integers(1, 10),
    st.floats(1.0, 3.0),
    st.integers(1, 200),
)
def test_gcra_never_rejects_steady_traffic_at_or_below_the_rate(
    limit: int, period: float, burst: int, slowdown: float, n: int
) -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    policy = GCRA("p", limit, period, burst)
    spacing = period / limit * slowdown
    for _ in range(n):
        assert store.decide("k", [policy], 1, True).allowed
        clock.now += spacing


@settings(max_examples=200)
@given(gaps, st.integers(1, 30), st.floats(0.5, 10))
def test_sliding_window_stays_within_its_bound(
    gaps: list[float], limit: int, window: float
) -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    policy = SlidingWindow("p", limit, window)
    admitted: list[float] = []
    for gap in gaps:
        clock.now += gap
        if store.decide("k", [policy], 1, True).allowed:
            admitted.append(clock.now)
    # Never more than `limit` in one fixed window ...
    by_window: dict[int, int] = {}
    for t in admitted:
        by_window[int(t // window)] = by_window.get(int(t // window), 0) + 1
    assert max(by_window.values(), default=0) <= limit
    # ... and fewer than 2 * limit in any sliding interval of `window` seconds.
    for i, start in enumerate(admitted):
        inside = sum(1 for t in admitted[i:] if t < start + window)
        assert inside < 2 * limit


@settings(max_examples=200)
@given(st.lists(st.tuples(st.floats(0, 1), st.integers(1, 5)), min_size=1, max_size=80))
def test_all_or_nothing_and_rejections_consume_nothing(steps: list[tuple[float, int]]) -> None:
    """Two stores see the same requests; one also gets requests for a second, tighter
    policy. A request rejected by the pair must leave the first policy untouched."""
    clock = Clock()
    both = MemoryStore(clock=clock)
    loose = GCRA("loose", 10, 1.0, 10)
    tight = SlidingWindow("tight", 5, 1.0)
    shadow = MemoryStore(clock=clock)
    for gap, cost in steps:
        clock.now += gap
        d = both.decide("k", [loose, tight], cost, True)
        if d.allowed:
            assert shadow.decide("k", [loose], cost, True).allowed
        # else: nothing consumed; the shadow, which only sees admitted requests,
        # stays in lock step (checked by the peek below)
        assert both.decide("k", [loose], 1, False) == shadow.decide("k", [loose], 1, False)


def test_check_peeks_and_acquire_consumes() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    p = GCRA("p", 2, 10.0)
    assert store.decide("k", [p], 1, False).remaining == 1
    assert store.decide("k", [p], 1, False).remaining == 1
    assert store.decide("k", [p], 1, True).remaining == 1
    assert store.decide("k", [p], 1, True).remaining == 0
    rejected = store.decide("k", [p], 1, True)
    assert not rejected.allowed and rejected.retry_after == pytest.approx(5.0)
    assert rejected.policy == "p"


def test_cost_counts_several_units() -> None:
    store = MemoryStore(clock=Clock())
    p = SlidingWindow("p", 10, 60)
    assert store.decide("k", [p], 7, True).remaining == 3
    assert not store.decide("k", [p], 4, True).allowed
    assert store.decide("k", [p], 3, True).allowed


@given(st.integers(1, 200), st.floats(0.1, 100))
def test_idle_keys_are_evicted_so_memory_returns_to_baseline(keys: int, period: float) -> None:
    clock = Clock()
    store = MemoryStore(clock=clock, sweep_interval=1.0)
    policies = [GCRA("g", 5, period), SlidingWindow("s", 5, period)]
    for i in range(keys):
        store.decide(f"k{i}", policies, 1, True)
    assert len(store) == 2 * keys
    clock.now += 2 * period + 1.0
    store.decide("fresh", policies, 1, False)  # any decision sweeps when due
    assert len(store) == 0


def test_invalid_policies() -> None:
    for bad in (
        lambda: GCRA("p", 0, 1.0),
        lambda: GCRA("p", 1, 0.0),
        lambda: GCRA("p", 1, 1.0, 0),
        lambda: SlidingWindow("p", 1, -1),
        lambda: GCRA('bad"name', 1, 1.0),
        lambda: GCRA("", 1, 1.0),
    ):
        with pytest.raises(ConfigurationError):
            bad()


@settings(max_examples=200)
@given(st.lists(st.floats(0, 3), min_size=1, max_size=60), st.integers(1, 10), st.integers(1, 5))
def test_the_limiter_fast_path_decides_like_the_store(
    gaps: list[float], limit: int, burst: int
) -> None:
    from tracseq_kit.ratelimit import RateLimiter

    clock = Clock()
    policy = GCRA("p", limit, 4.0, burst)
    limiter = RateLimiter([policy], clock=clock)
    reference = MemoryStore(clock=clock)
    for gap in gaps:
        clock.now += gap
        fast = limiter.acquire_nowait("k")
        slow = reference.decide("k", [policy], 1, True)
        assert fast.allowed == slow.allowed and fast.remaining == slow.remaining
        assert fast.retry_after == pytest.approx(slow.retry_after)
        assert fast.reset_after == pytest.approx(slow.reset_after)


@settings(max_examples=200)
@given(st.lists(st.floats(0, 3), min_size=1, max_size=60), st.integers(1, 10), st.integers(1, 5))
def test_try_acquire_decides_like_acquire(gaps: list[float], limit: int, burst: int) -> None:
    from tracseq_kit.ratelimit import RateLimiter

    clock = Clock()
    policy = GCRA("p", limit, 4.0, burst)
    fast = RateLimiter([policy], clock=clock)
    full = RateLimiter([policy], clock=clock)
    for gap in gaps:
        clock.now += gap
        assert fast.try_acquire("k") == full.acquire_nowait("k").allowed
    assert fast._bool_counts == [full.allowed, full.rejected]


def test_try_acquire_on_other_limiters_falls_back() -> None:
    from tracseq_kit.ratelimit import RateLimiter

    lim = RateLimiter([SlidingWindow("s", 2, 60)], clock=Clock())
    assert [lim.try_acquire("k") for _ in range(3)] == [True, True, False]
