from __future__ import annotations

import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from tracseq_kit.gateway import UpstreamPool


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


ADDRS = ["h:1", "h:2", "h:3"]


def test_round_robin_spreads_evenly() -> None:
    pool = UpstreamPool("p", ADDRS, balancer="round_robin")
    picks = Counter(pool.pick().address for _ in range(300))  # type: ignore[union-attr]
    assert set(picks.values()) == {100}


def test_power_of_two_choices_prefers_fewer_in_flight() -> None:
    pool = UpstreamPool("p", ADDRS, rng=random.Random(1))
    busy = pool.instances[0]
    busy.outstanding = 50
    picks = Counter(pool.pick().address for _ in range(300))  # type: ignore[union-attr]
    assert picks[busy.address] == 0
    assert picks["h:2"] > 50 and picks["h:3"] > 50


def test_consecutive_failures_eject_and_backoff_returns_it() -> None:
    clock = FakeClock()
    pool = UpstreamPool("p", ADDRS[:2], eject_after=3, eject_backoff=10, clock=clock)
    bad = pool.instances[0]
    for _ in range(2):
        pool.record_failure(bad)
    assert bad.available(clock())
    pool.record_failure(bad)
    assert not bad.available(clock())
    assert all(pool.pick() is pool.instances[1] for _ in range(20))
    assert pool.state() == "degraded"
    clock.now += 10
    assert bad.available(clock())
    # a second ejection in a row lasts twice as long
    for _ in range(3):
        pool.record_failure(bad)
    clock.now += 10
    assert not bad.available(clock())
    clock.now += 10
    assert bad.available(clock())


def test_success_resets_the_failure_streak() -> None:
    pool = UpstreamPool("p", ADDRS[:1], eject_after=3, clock=FakeClock())
    inst = pool.instances[0]
    for _ in range(10):
        pool.record_failure(inst)
        pool.record_failure(inst)
        pool.record_success(inst)
    assert inst.ejections == 0


def test_no_available_instance_gives_none() -> None:
    pool = UpstreamPool("p", ADDRS[:2])
    for inst in pool.instances:
        inst.healthy = False
    assert pool.pick() is None
    assert pool.state() == "unhealthy"


def test_exclude_is_avoided_but_used_when_alone() -> None:
    pool = UpstreamPool("p", ADDRS[:2])
    first = pool.instances[0]
    assert all(pool.pick(exclude=first) is pool.instances[1] for _ in range(10))
    pool.instances[1].healthy = False
    assert pool.pick(exclude=first) is first


def test_set_addresses_keeps_state_of_known_instances() -> None:
    pool = UpstreamPool("p", ADDRS[:2])
    pool.instances[0].requests = 7
    pool.set_addresses(["h:1", "h:9", "h:1"])
    assert [i.address for i in pool.instances] == ["h:1", "h:9"]
    assert pool.instances[0].requests == 7


@given(
    healthy=st.lists(st.booleans(), min_size=1, max_size=6),
    ejected=st.lists(st.booleans(), min_size=6, max_size=6),
    outstanding=st.lists(st.integers(0, 5), min_size=6, max_size=6),
    balancer=st.sampled_from(["round_robin", "least_outstanding"]),
    seed=st.integers(0, 100),
)
def test_pick_never_returns_an_unavailable_instance(
    healthy: list[bool], ejected: list[bool], outstanding: list[int], balancer: str, seed: int
) -> None:
    clock = FakeClock()
    pool = UpstreamPool(
        "p",
        [f"h:{i + 1}" for i in range(len(healthy))],
        balancer=balancer,  # type: ignore[arg-type]
        clock=clock,
        rng=random.Random(seed),
    )
    for inst, h, e, o in zip(pool.instances, healthy, ejected, outstanding, strict=False):
        inst.healthy = h
        inst.ejected_until = clock.now + 5 if e else 0.0
        inst.outstanding = o
    available = [i for i in pool.instances if i.available(clock.now)]
    for _ in range(10):
        picked = pool.pick()
        if available:
            assert picked in available
        else:
            assert picked is None


def test_a_lease_counts_outstanding_however_the_block_ends() -> None:
    pool = UpstreamPool("p", ["10.0.0.1:80"])
    (inst,) = pool.instances
    with pool.lease(inst):
        assert inst.outstanding == 1
        with pool.lease(inst):
            assert inst.outstanding == 2
    assert inst.outstanding == 0 and inst.requests == 2
    try:
        with pool.lease(inst):
            raise RuntimeError("upstream exploded")
    except RuntimeError:
        pass
    assert inst.outstanding == 0
