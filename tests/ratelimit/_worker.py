"""One process of a fleet hammering a shared limit in Redis; prints how many passed."""

from __future__ import annotations

import asyncio
import json
import sys

import redis.asyncio as aioredis

from tracseq_kit.ratelimit import GCRA, RateLimiter, RedisStore


async def main(url: str, prefix: str, n: int) -> None:
    client = aioredis.from_url(url)
    limiter = RateLimiter([GCRA("shared", 25, 1000.0)], store=RedisStore(client, prefix=prefix))
    results = await asyncio.gather(*(limiter.acquire("everyone") for _ in range(n)))
    print(json.dumps({"allowed": sum(r.allowed for r in results)}))
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
