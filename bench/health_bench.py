"""Latency of ``GET /health`` served in-process with cached checks.

    python bench/health_bench.py [--requests 20000]

Three checks are registered (two critical, one not) and run once; every request then
answers from the cache. Measured two ways in one run: the ASGI callable driven directly
(the endpoint's own cost) and through httpx's ASGITransport (what a test client sees).
Prints p50 and p99 per request. Goal: p50 under 1 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx

from tracseq_kit.health import HealthRegistry


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()

    registry = HealthRegistry("template_service", ttl=3600)
    registry.add("postgres", lambda: 1.2)
    registry.add("redis", lambda: 0.4)
    registry.add("kafka", lambda: 3, critical=False)
    registry.mark_started()
    app = registry.asgi_app()
    await registry.run()

    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/health",
        "root_path": "",
        "headers": [(b"host", b"svc")],
        "query_string": b"",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    direct: list[float] = []
    for _ in range(args.requests):
        start = time.perf_counter()
        await app(scope, receive, send)
        direct.append((time.perf_counter() - start) * 1e6)

    via_httpx: list[float] = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as client:
        for _ in range(min(args.requests, 5_000)):
            start = time.perf_counter()
            response = await client.get("/health")
            via_httpx.append((time.perf_counter() - start) * 1e6)
        assert response.status_code == 200

    print(f"GET /health, cached checks, {args.requests} requests")
    print(f"{'path':28} {'p50 µs':>10} {'p99 µs':>10} {'mean µs':>10}")
    for name, samples in (("ASGI callable", direct), ("httpx ASGITransport", via_httpx)):
        print(
            f"{name:28} {percentile(samples, 0.5):10.1f} {percentile(samples, 0.99):10.1f}"
            f" {statistics.fmean(samples):10.1f}"
        )
    print(f"goal p50 < 1000 µs: {'met' if percentile(direct, 0.5) < 1000 else 'NOT met'}")


if __name__ == "__main__":
    asyncio.run(main())
