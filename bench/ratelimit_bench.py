"""Rate-limit decisions per second: tracseq-kit vs `limits`, one process run.

    python bench/ratelimit_bench.py [--decisions 100000] [--redis-url redis://127.0.0.1:6379/0]

Memory: sequential decisions over 1000 keys; `limits` fixed window and sliding-window
counter (sync MemoryStorage, its fastest path; and its async storage) against the kit's
GCRA (``try_acquire`` -> bool, the shape of ``limits``' ``hit``; ``acquire_nowait`` and
``await acquire`` -> Decision) and sliding window. Redis (with
--redis-url): 64 concurrent callers over 1000 keys; `limits` async RedisStorage (fixed
and sliding window), a bare redis-py EVALSHA loop of a one-line script, and the kit's
RedisStore. Rounds interleave; the
best of each is kept. `limits` comes from the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from tracseq_kit.ratelimit import GCRA, RateLimiter, RedisStore, SlidingWindow

KEYS = [f"user-{i}" for i in range(1000)]


def memory_targets() -> dict[str, Callable[[int], Awaitable[None]]]:
    import limits
    from limits.aio.storage import MemoryStorage as AsyncMemoryStorage
    from limits.aio.strategies import FixedWindowRateLimiter as AsyncFixedWindow
    from limits.storage import MemoryStorage
    from limits.strategies import FixedWindowRateLimiter, SlidingWindowCounterRateLimiter

    item = limits.parse("1000000/minute")
    fixed = FixedWindowRateLimiter(MemoryStorage())
    sliding = SlidingWindowCounterRateLimiter(MemoryStorage())
    async_fixed = AsyncFixedWindow(AsyncMemoryStorage())
    gcra = RateLimiter([GCRA("p", 1_000_000, 60.0)])
    window = RateLimiter([SlidingWindow("p", 1_000_000, 60.0)])

    async def limits_fixed(n: int) -> None:
        hit = fixed.hit
        for i in range(n):
            hit(item, KEYS[i % 1000])

    async def limits_sliding(n: int) -> None:
        hit = sliding.hit
        for i in range(n):
            hit(item, KEYS[i % 1000])

    async def limits_async_fixed(n: int) -> None:
        hit = async_fixed.hit
        for i in range(n):
            await hit(item, KEYS[i % 1000])

    async def kit_gcra_try(n: int) -> None:
        try_acquire = gcra.try_acquire
        for i in range(n):
            try_acquire(KEYS[i % 1000])

    async def kit_gcra_nowait(n: int) -> None:
        acquire = gcra.acquire_nowait
        for i in range(n):
            acquire(KEYS[i % 1000])

    async def kit_gcra(n: int) -> None:
        acquire = gcra.acquire
        for i in range(n):
            await acquire(KEYS[i % 1000])

    async def kit_sliding(n: int) -> None:
        acquire = window.acquire
        for i in range(n):
            await acquire(KEYS[i % 1000])

    return {
        "limits memory fixed window": limits_fixed,
        "limits memory sliding window": limits_sliding,
        "limits async memory fixed window": limits_async_fixed,
        "tracseq-kit memory GCRA try_acquire": kit_gcra_try,
        "tracseq-kit memory GCRA acquire_nowait": kit_gcra_nowait,
        "tracseq-kit memory GCRA await acquire": kit_gcra,
        "tracseq-kit memory sliding window": kit_sliding,
    }


async def redis_targets(
    url: str,
) -> tuple[dict[str, Callable[[int], Awaitable[None]]], Callable[[], Awaitable[None]]]:
    import limits
    import redis.asyncio as aioredis
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import FixedWindowRateLimiter, SlidingWindowCounterRateLimiter

    run = uuid.uuid4().hex[:8]
    item = limits.parse("1000000/minute")
    storage = RedisStorage(url, implementation="redispy")
    fixed = FixedWindowRateLimiter(storage)
    sliding = SlidingWindowCounterRateLimiter(storage)
    client = aioredis.from_url(url, max_connections=64)
    kit = RateLimiter(
        [GCRA("p", 1_000_000, 60.0)], store=RedisStore(client, prefix=f"bench:{run}:")
    )
    sha = await client.script_load("return redis.call('INCR', KEYS[1])")

    def concurrent(one: Callable[[str], Awaitable[object]]) -> Callable[[int], Awaitable[None]]:
        async def run_all(n: int) -> None:
            per = n // 64

            async def caller(c: int) -> None:
                for i in range(per):
                    await one(KEYS[(c * per + i) % 1000])

            await asyncio.gather(*(caller(c) for c in range(64)))

        return run_all

    async def evalsha(key: str) -> object:
        return await client.evalsha(sha, 1, f"bench:{run}:raw:{key}")

    targets = {
        "limits async Redis fixed window": concurrent(lambda k: fixed.hit(item, run, k)),
        "limits async Redis sliding window": concurrent(lambda k: sliding.hit(item, run, k)),
        "bare redis-py EVALSHA loop": concurrent(evalsha),
        "tracseq-kit RedisStore GCRA": concurrent(kit.acquire),
    }

    async def close() -> None:
        async for key in client.scan_iter(match=f"bench:{run}:*", count=1000):
            await client.delete(key)
        await client.aclose()

    return targets, close


async def measure(
    targets: dict[str, Callable[[int], Awaitable[None]]], n: int, rounds: int
) -> dict[str, float]:
    best: dict[str, float] = {}
    for run in targets.values():
        await run(min(n, 2048))
    for _ in range(rounds):
        for name, run in targets.items():
            start = time.perf_counter()
            await run(n)
            rate = n / (time.perf_counter() - start)
            best[name] = max(best.get(name, 0.0), rate)
    return best


def report(title: str, rates: dict[str, float], baseline: str) -> None:
    print(title)
    print(f"  {'target':38} {'decisions/s':>12} {'µs each':>9} {'vs ' + baseline:>36}")
    for name, rate in rates.items():
        print(f"  {name:38} {rate:12,.0f} {1e6 / rate:9.2f} {rate / rates[baseline]:35.1f}x")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--redis-decisions", type=int, default=20_032)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()
    rates = await measure(memory_targets(), args.decisions, args.rounds)
    report("In memory, sequential, 1000 keys", rates, "limits memory fixed window")
    if args.redis_url:
        targets, close = await redis_targets(args.redis_url)
        try:
            rates = await measure(targets, args.redis_decisions, args.rounds)
        finally:
            await close()
        report("Redis, 64 concurrent callers, 1000 keys", rates, "limits async Redis fixed window")


if __name__ == "__main__":
    asyncio.run(main())
