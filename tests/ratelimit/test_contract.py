"""One contract, two stores: the in-memory store and the real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracseq_kit import ConfigurationError, RateLimitExceededError
from tracseq_kit.ratelimit import GCRA, MemoryStore, RateLimiter, RedisStore, SlidingWindow

pytestmark = pytest.mark.anyio

# Long periods: the Redis server's clock moves a few ms during a test, which must not
# refill anything these tests count on.
BURST = GCRA("burst", 5, 1000.0)
WINDOW = SlidingWindow("window", 3, 1000.0)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Any]:
    c = aioredis.from_url(redis_url)
    yield c
    await c.aclose()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, client: Any, redis_prefix: str) -> Any:
    if request.param == "memory":
        return MemoryStore()
    return RedisStore(client, prefix=redis_prefix)


async def test_admits_capacity_then_rejects_with_retry_after(store: Any) -> None:
    limiter = RateLimiter([BURST], store=store)
    remaining = [(await limiter.acquire("alice")).remaining for _ in range(5)]
    assert remaining == [4, 3, 2, 1, 0]
    rejected = await limiter.acquire("alice")
    assert not rejected.allowed
    assert rejected.policy == "burst"
    assert 199 < rejected.retry_after <= 200  # one unit per 200 s
    assert (await limiter.acquire("bob")).allowed  # keys are independent


async def test_check_consumes_nothing(store: Any) -> None:
    limiter = RateLimiter([WINDOW], store=store)
    for _ in range(10):
        assert (await limiter.check("k")).remaining == 2
    assert (await limiter.acquire("k")).remaining == 2
    assert (await limiter.check("k")).remaining == 1


async def test_several_limits_all_or_nothing(store: Any) -> None:
    limiter = RateLimiter([BURST, WINDOW], store=store)
    for _ in range(3):
        assert (await limiter.acquire("k")).allowed
    rejected = await limiter.acquire("k")
    assert not rejected.allowed and rejected.policy == "window"
    # The rejected request did not consume from "burst": it still has 2 left.
    only_burst = RateLimiter([BURST], store=store)
    assert (await only_burst.check("k")).remaining == 1


async def test_cost_and_rejections_do_not_consume(store: Any) -> None:
    limiter = RateLimiter([BURST], store=store)
    assert (await limiter.acquire("k", cost=4)).remaining == 1
    assert not (await limiter.acquire("k", cost=2)).allowed
    assert (await limiter.acquire("k", cost=1)).allowed
    with pytest.raises(ConfigurationError):
        await limiter.acquire("k", cost=6)


async def test_enforce_raises(store: Any) -> None:
    limiter = RateLimiter([GCRA("one", 1, 1000.0)], store=store)
    await limiter.enforce("k")
    with pytest.raises(RateLimitExceededError) as info:
        await limiter.enforce("k")
    assert info.value.policy == "one" and info.value.retry_after > 900


async def test_redis_keys_share_one_hash_tag(client: Any, redis_prefix: str) -> None:
    store = RedisStore(client, prefix=redis_prefix)
    keys = store.keys("user{1}", [BURST, WINDOW])
    tags = {k[k.index("{") + 1 : k.index("}")] for k in keys}
    assert len(tags) == 1
    limiter = RateLimiter([BURST, WINDOW], store=store)
    await limiter.acquire("user{1}")
    assert await client.exists(*keys) == len(keys)


async def test_concurrent_decisions_share_round_trips(client: Any, redis_prefix: str) -> None:
    import asyncio

    store = RedisStore(client, prefix=redis_prefix)
    limiter = RateLimiter([GCRA("big", 1000, 1000.0)], store=store)
    results = await asyncio.gather(*(limiter.acquire(f"k{i % 10}") for i in range(200)))
    assert all(r.allowed for r in results)
    assert store.round_trips < 20


steps = st.lists(
    st.tuples(st.integers(0, 3000), st.integers(1, 3), st.booleans()), min_size=1, max_size=25
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=steps)
async def test_the_lua_script_decides_exactly_like_the_memory_store(
    client: Any, redis_prefix: str, steps: list[tuple[int, int, bool]]
) -> None:
    """Differential test with one fake clock for both implementations."""
    import uuid

    clock_s = [5000.0]
    memory = MemoryStore(clock=lambda: clock_s[0])
    redis_store = RedisStore(client, prefix=f"{redis_prefix}{uuid.uuid4().hex}:")
    policies = [GCRA("g", 4, 2.0, 3), SlidingWindow("s", 5, 3.0)]
    for dt_ms, cost, consume in steps:
        clock_s[0] += dt_ms / 1000.0
        a = memory.decide("k", policies, cost, consume)
        b = await redis_store.decide("k", policies, cost, consume, now_ms=clock_s[0] * 1000.0)
        assert (a.allowed, a.remaining, a.policy) == (b.allowed, b.remaining, b.policy)
        assert a.retry_after == pytest.approx(b.retry_after, abs=1e-3)
        assert a.reset_after == pytest.approx(b.reset_after, abs=1e-3)


WORKER = Path(__file__).with_name("_worker.py")


def test_processes_sharing_redis_never_exceed_the_limit(redis_url: str, redis_prefix: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), redis_url, redis_prefix, "40"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    admitted = [json.loads(p.communicate(timeout=60)[0])["allowed"] for p in procs]
    assert sum(admitted) == 25  # GCRA("shared", 25, 1000 s): 25 in total, not per process
