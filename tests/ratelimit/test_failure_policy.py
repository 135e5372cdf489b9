"""Redis stopped or cut mid-test: the configured failure policy holds, then recovers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse

import anyio
import pytest
import redis.asyncio as aioredis

from tracseq_kit.local import EmbeddedRedis
from tracseq_kit.ratelimit import GCRA, RateLimiter, RedisStore
from tracseq_kit.testing import TcpProxy

pytestmark = pytest.mark.anyio

POLICY = GCRA("p", 2, 1000.0)


@pytest.fixture
async def stopped_redis() -> AsyncIterator[Any]:
    """A client of a private Redis that has been stopped."""
    async with EmbeddedRedis() as rd:
        client = aioredis.from_url(rd.url, socket_connect_timeout=0.2)
        assert await client.ping()
        await anyio.to_thread.run_sync(rd.stop)
        yield client
        await client.aclose()


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("open", [True] * 4), ("closed", [False] * 4), ("local", [True, True, False, False])],
)
async def test_failure_policies(stopped_redis: Any, policy: str, expected: list[bool]) -> None:
    limiter = RateLimiter(
        [POLICY],
        store=RedisStore(stopped_redis, timeout=0.3),
        on_failure=policy,  # type: ignore[arg-type]
    )
    start = time.monotonic()
    decisions = [(await limiter.acquire("k")).allowed for _ in range(4)]
    assert time.monotonic() - start < 1.0  # bounded: one timeout, then no more waiting
    assert decisions == expected
    assert limiter.degraded and limiter.switches == 1


async def test_a_hanging_redis_is_bounded_by_the_timeout() -> None:
    import asyncio

    async def black_hole(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    client = aioredis.from_url(f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    limiter = RateLimiter([POLICY], store=RedisStore(client, timeout=0.2), on_failure="open")
    start = time.monotonic()
    assert (await limiter.acquire("k")).allowed
    assert time.monotonic() - start < 0.6
    server.close()
    await client.aclose()


async def test_recovers_by_itself_when_redis_returns(redis_url: str, redis_prefix: str) -> None:
    if not redis_url.startswith("redis://"):
        pytest.skip("the outage proxy needs Redis over TCP (set TRACSEQ_TEST_REDIS_URL)")
    u = urlparse(redis_url)
    async with TcpProxy((u.hostname or "127.0.0.1", u.port or 6379)) as proxy:
        client = aioredis.from_url(proxy.url_for("redis", "/0"), socket_connect_timeout=0.2)
        limiter = RateLimiter(
            [POLICY],
            store=RedisStore(client, prefix=redis_prefix, timeout=0.3),
            on_failure="closed",
            retry_interval=0.05,
        )
        assert (await limiter.acquire("k")).allowed  # via Redis: 1 of 2 used
        proxy.cut()
        assert not (await limiter.acquire("k")).allowed  # closed while cut
        assert limiter.degraded
        proxy.restore()
        await anyio.sleep(0.1)
        decision = await limiter.acquire("k")  # Redis again: the 2nd unit is left
        assert decision.allowed and decision.remaining == 0
        assert not limiter.degraded and limiter.switches == 2
        await client.aclose()


async def test_switches_are_counted_in_metrics(stopped_redis: Any) -> None:
    from prometheus_client import generate_latest

    from tracseq_kit.telemetry import metrics_registry

    limiter = RateLimiter(
        [POLICY], store=RedisStore(stopped_redis, timeout=0.2), name="metrics-test"
    )
    await limiter.acquire("k")
    text = generate_latest(metrics_registry()).decode()
    assert 'tracseq_ratelimit_store_switches_total{limiter="metrics-test"} 1.0' in text
    assert 'tracseq_ratelimit_degraded{limiter="metrics-test"} 1.0' in text
