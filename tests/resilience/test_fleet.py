"""Fleet mode against the real Redis: shared state, probe limit, fallback."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio as aioredis

from tracseq_kit import CircuitOpenError, ConfigurationError
from tracseq_kit.resilience import BreakerState, CircuitBreaker, RedisBreakerStore
from tracseq_kit.testing import TcpProxy

pytestmark = pytest.mark.anyio

WORKER = Path(__file__).with_name("_fleet_worker.py")


class Boom(Exception):
    pass


async def boom() -> None:
    raise Boom


async def ok() -> str:
    return "ok"


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Any]:
    c = aioredis.from_url(redis_url)
    yield c
    await c.aclose()


def fleet_breaker(client: Any, prefix: str, **options: Any) -> CircuitBreaker:
    store = RedisBreakerStore(client, prefix=prefix, sync_interval=0.01, timeout=0.5)
    defaults: dict[str, Any] = dict(
        window_seconds=30,
        minimum_calls=4,
        wait_duration=0.3,
        half_open_probes=1,
    )
    defaults.update(options)
    return CircuitBreaker("dep", store=store, **defaults)


async def settle(*breakers: CircuitBreaker) -> None:
    for _ in range(50):
        await asyncio.sleep(0.02)
        for b in breakers:
            if b._fleet is not None and b._fleet._task is not None:
                break
        else:
            return


async def test_failures_from_two_members_open_both(client: Any, redis_prefix: str) -> None:
    a = fleet_breaker(client, redis_prefix)
    b = fleet_breaker(client, redis_prefix)
    for member in (a, b):
        for _ in range(2):
            with pytest.raises(Boom):
                await member.call(boom)
        await settle(member)
    # Neither saw 4 failures alone; together they did. A member learns of the
    # transition at its next sync (at most sync_interval after a call).
    for member in (a, b):
        await asyncio.sleep(0.02)
        try:
            await member.call(ok)
        except CircuitOpenError:
            pass
        await settle(member)
        with pytest.raises(CircuitOpenError):
            await member.call(ok)
    assert a.state is BreakerState.OPEN and b.state is BreakerState.OPEN


async def test_creating_a_breaker_never_resets_shared_state(client: Any, redis_prefix: str) -> None:
    a = fleet_breaker(client, redis_prefix, wait_duration=30)
    for _ in range(4):
        with pytest.raises(Boom):
            await a.call(boom)
    await settle(a)
    newcomer = fleet_breaker(client, redis_prefix, wait_duration=30)
    called = False

    async def spy() -> None:
        nonlocal called
        called = True

    with pytest.raises(CircuitOpenError) as info:
        await newcomer.call(spy)
    assert not called
    assert 25 < info.value.remaining <= 30


async def test_half_open_admits_at_most_k_across_members(client: Any, redis_prefix: str) -> None:
    members = [fleet_breaker(client, redis_prefix, half_open_probes=2) for _ in range(3)]
    for _ in range(4):
        with pytest.raises(Boom):
            await members[0].call(boom)
    await settle(members[0])
    for m in members[1:]:
        with pytest.raises(CircuitOpenError):
            await m.call(ok)
    await asyncio.sleep(0.35)
    gate = anyio.Event()
    admitted = 0

    async def probe(m: CircuitBreaker) -> None:
        nonlocal admitted
        try:
            async with m:
                admitted += 1
                await gate.wait()
        except CircuitOpenError:
            pass

    async with anyio.create_task_group() as tg:
        for m in members:
            for _ in range(3):
                tg.start_soon(probe, m)
        for _ in range(100):
            await asyncio.sleep(0.01)
        gate.set()
    assert admitted == 2
    await asyncio.sleep(0.05)
    assert await members[2].call(ok) == "ok"
    assert members[2].state is BreakerState.CLOSED


def _spawn(redis_url: str, prefix: str, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), redis_url, prefix, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _release(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "READY"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def test_processes_open_together(redis_url: str, redis_prefix: str) -> None:
    procs = [_spawn(redis_url, redis_prefix, "fail") for _ in range(2)]
    results = _release(procs)
    # Each process saw 3 failures (below minimum_calls=6); together they opened it.
    assert [r["rejected"] for r in results] == [1, 1]


def test_processes_admit_at_most_k_probes_in_total(redis_url: str, redis_prefix: str) -> None:
    async def trip() -> None:
        c = aioredis.from_url(redis_url)
        b = CircuitBreaker(
            "fleet-dep",
            window_seconds=30,
            minimum_calls=6,
            wait_duration=1.0,
            half_open_probes=2,
            store=RedisBreakerStore(c, prefix=redis_prefix),
        )
        for _ in range(6):
            with pytest.raises(Boom):
                await b.call(boom)
        await settle(b)
        await asyncio.sleep(0.1)
        await c.aclose()

    anyio.run(trip)
    procs = [_spawn(redis_url, redis_prefix, "probe") for _ in range(3)]
    import time

    time.sleep(1.1)  # the shared open period (1 s, on the Redis clock) runs out
    results = _release(procs)
    assert sum(r["admitted"] for r in results) == 2
    assert sum(r["rejected"] for r in results) == 13


async def test_unreachable_redis_falls_back_to_local_state_without_errors() -> None:
    dead = aioredis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    store = RedisBreakerStore(dead, timeout=0.3, retry_interval=60)
    b = CircuitBreaker("dep", window_seconds=30, minimum_calls=4, wait_duration=30, store=store)
    with anyio.fail_after(2):
        assert await b.call(ok) == "ok"
    assert store.fallbacks == 1
    for _ in range(3):
        with pytest.raises(Boom):
            await b.call(boom)
    assert b.state is BreakerState.OPEN  # the local window decided
    with pytest.raises(CircuitOpenError):
        await b.call(ok)
    await dead.aclose()


async def test_fallback_bound_when_redis_hangs() -> None:
    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hung = aioredis.from_url(f"redis://127.0.0.1:{port}")
    store = RedisBreakerStore(hung, timeout=0.2)
    b = CircuitBreaker("dep", window_seconds=30, store=store)
    start = asyncio.get_running_loop().time()
    assert await b.call(ok) == "ok"
    assert asyncio.get_running_loop().time() - start < 1.0
    server.close()
    await hung.aclose()


async def test_recovers_when_redis_comes_back(redis_url: str, redis_prefix: str) -> None:
    from urllib.parse import urlparse

    if not redis_url.startswith("redis://"):
        pytest.skip("the outage proxy needs Redis over TCP (set TRACSEQ_TEST_REDIS_URL)")
    u = urlparse(redis_url)
    proxy = await TcpProxy((u.hostname or "127.0.0.1", u.port or 6379)).start()
    client = aioredis.from_url(proxy.url_for("redis", "/0"), socket_connect_timeout=0.2)
    store = RedisBreakerStore(client, prefix=redis_prefix, timeout=0.3, retry_interval=0.05)
    b = CircuitBreaker("dep", window_seconds=30, minimum_calls=100, store=store)
    assert await b.call(ok) == "ok"
    assert b._fleet is not None and b._fleet.healthy
    proxy.cut()
    for _ in range(30):
        await b.call(ok)
        await asyncio.sleep(0.02)
    assert not b._fleet.healthy
    proxy.restore()
    for _ in range(100):
        await b.call(ok)
        await asyncio.sleep(0.02)
        if b._fleet.healthy:
            break
    assert b._fleet.healthy
    await client.aclose()
    await proxy.stop()


def test_fleet_mode_needs_a_time_window(redis_url: str) -> None:
    client = aioredis.from_url(redis_url)
    with pytest.raises(ConfigurationError):
        CircuitBreaker("dep", store=RedisBreakerStore(client))
