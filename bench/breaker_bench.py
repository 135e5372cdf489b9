"""Success-path overhead of circuit breakers, side by side in one process run.

    python bench/breaker_bench.py [--calls 200000] [--rounds 5] [--redis-url URL]

Compares a bare ``await`` with the kit's CircuitBreaker (``call`` and ``async with``)
and the peers pybreaker (its ``calling()`` context manager around the await; its
``call_async`` needs tornado), aiobreaker (``call_async``) and purgatory (``async with``
on an in-memory factory, both fetching the breaker per call as its README shows and
keeping one breaker object). Rounds are interleaved and the median per-call time kept;
overhead = time per call minus the bare await's. An empty ``async def`` wrapper with the
same signature as ``call()`` shows the floor of any API that wraps the awaited call.
Peers come from the ``bench`` extra.
With ``--redis-url`` it also measures the kit's fleet mode (state shared in Redis).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from tracseq_kit.resilience import CircuitBreaker, RedisBreakerStore


async def work() -> int:
    return 1


Runner = Callable[[int], Awaitable[None]]


def runners() -> dict[str, Runner]:
    out: dict[str, Runner] = {}

    async def bare(n: int) -> None:
        for _ in range(n):
            await work()

    out["bare await"] = bare

    async def wrapper(fn: Callable[..., Awaitable[int]], /, *args: object, **kwargs: object) -> int:
        return await fn(*args, **kwargs)

    async def empty_wrapper(n: int) -> None:
        for _ in range(n):
            await wrapper(work)

    # The floor of any API that wraps the call (what call() and every peer's call do).
    out["empty wrapper coroutine"] = empty_wrapper

    kit = CircuitBreaker("bench")

    async def kit_call(n: int) -> None:
        call = kit.call
        for _ in range(n):
            await call(work)

    async def kit_with(n: int) -> None:
        for _ in range(n):
            async with kit:
                await work()

    out["tracseq-kit call()"] = kit_call
    out["tracseq-kit async with"] = kit_with

    try:
        import pybreaker

        pb = pybreaker.CircuitBreaker()

        async def pybreaker_calling(n: int) -> None:
            for _ in range(n):
                with pb.calling():
                    await work()

        out["pybreaker calling()"] = pybreaker_calling
    except ImportError:
        print("pybreaker not installed (pip install 'tracseq-kit[bench]')", file=sys.stderr)

    try:
        import aiobreaker

        ab = aiobreaker.CircuitBreaker()

        async def aiobreaker_call(n: int) -> None:
            for _ in range(n):
                await ab.call_async(work)

        out["aiobreaker call_async"] = aiobreaker_call
    except ImportError:
        print("aiobreaker not installed", file=sys.stderr)

    try:
        import purgatory

        factory = purgatory.AsyncCircuitBreakerFactory()

        async def purgatory_with(n: int) -> None:
            for _ in range(n):
                async with await factory.get_breaker("bench"):
                    await work()

        out["purgatory async with"] = purgatory_with

        async def purgatory_kept(n: int) -> None:
            breaker = await factory.get_breaker("bench-kept")
            for _ in range(n):
                async with breaker:
                    await work()

        out["purgatory, breaker kept"] = purgatory_kept
    except ImportError:
        print("purgatory not installed", file=sys.stderr)
    return out


async def fleet_runner(url: str) -> tuple[Runner, Callable[[], Awaitable[None]]]:
    import uuid

    import redis.asyncio as aioredis

    client = aioredis.from_url(url)
    prefix = f"bench:{uuid.uuid4().hex}"
    breaker = CircuitBreaker(
        "bench-fleet", window_seconds=60, store=RedisBreakerStore(client, prefix=prefix)
    )

    async def fleet(n: int) -> None:
        call = breaker.call
        for _ in range(n):
            await call(work)

    async def close() -> None:
        await client.delete(f"{prefix}:{{bench-fleet}}:state", f"{prefix}:{{bench-fleet}}:window")
        await client.aclose()

    return fleet, close


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()

    targets = runners()
    close = None
    if args.redis_url:
        targets["tracseq-kit fleet (Redis)"], close = await fleet_runner(args.redis_url)
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for run in targets.values():  # warm-up
        await run(2_000)
    for _ in range(args.rounds):
        for name, run in targets.items():
            start = time.perf_counter()
            await run(args.calls)
            samples[name].append((time.perf_counter() - start) / args.calls * 1e6)
    if close is not None:
        await close()

    per_call = {name: statistics.median(v) for name, v in samples.items()}
    bare = per_call["bare await"]
    kit = per_call["tracseq-kit call()"] - bare
    version = sys.version.split()[0]
    print(f"{args.calls} calls x {args.rounds} rounds, median per call (Python {version})")
    print(f"{'target':28} {'µs/call':>9} {'overhead µs':>12} {'overhead / kit call()':>22}")
    for name, value in per_call.items():
        overhead = value - bare
        ratio = "" if name == "bare await" else f"{overhead / kit:>21.1f}x"
        print(f"{name:28} {value:9.3f} {overhead:12.3f} {ratio:>22}")


if __name__ == "__main__":
    asyncio.run(main())
