"""A separate process of a fleet: shares one breaker through Redis and reports."""

from __future__ import annotations

import asyncio
import json
import sys

import redis.asyncio as aioredis

from tracseq_kit import CircuitOpenError
from tracseq_kit.resilience import CircuitBreaker, RedisBreakerStore


async def main(url: str, prefix: str, mode: str) -> None:
    client = aioredis.from_url(url)
    store = RedisBreakerStore(client, prefix=prefix, sync_interval=0.05)
    breaker = CircuitBreaker(
        "fleet-dep",
        window_seconds=30,
        minimum_calls=6,
        wait_duration=1.0,
        half_open_probes=2,
        store=store,
    )
    out: dict[str, object] = {}
    if mode == "fail":

        async def boom() -> None:
            raise RuntimeError("down")

        for _ in range(3):
            try:
                await breaker.call(boom)
            except (RuntimeError, CircuitOpenError):
                pass
        await asyncio.sleep(0.3)
        print("READY", flush=True)
        sys.stdin.readline()  # wait until every worker has failed
        rejected = 0
        for _ in range(10):
            try:
                await breaker.call(asyncio.sleep, 0)
            except CircuitOpenError:
                rejected += 1
                break
            await asyncio.sleep(0.05)
        out["rejected"] = rejected
    elif mode == "probe":
        admitted = rejected = 0

        async def probe() -> None:
            nonlocal admitted, rejected
            try:
                async with breaker:
                    admitted += 1
                    await asyncio.sleep(1.0)
            except CircuitOpenError:
                rejected += 1

        print("READY", flush=True)
        sys.stdin.readline()
        await asyncio.gather(*(probe() for _ in range(5)))
        out.update(admitted=admitted, rejected=rejected)
    print(json.dumps(out), flush=True)
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
