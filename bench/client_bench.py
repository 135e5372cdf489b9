"""The typed client's cost per call next to bare httpx, and its throughput per transport.

One nginx worker answers every GET with the JSON of a template (about 1 KiB) on
loopback, so the server's share is small and the same for every client.

1. Per call, sequential, blocking and async: ``client.templates.get(id)`` (request
   building, retry bookkeeping, error mapping, pydantic parsing into ``Template``) next to
   a bare ``httpx`` GET plus ``.json()`` on the same transport, and a bare GET plus
   ``Template.model_validate_json`` (the same result type). Alternating rounds; the best
   round of each counts. Goal: the kit adds at most 10% to the bare httpx call.
2. Throughput, 32 concurrent tasks: ``AsyncTracSeqClient`` on httpx's default transport
   and on :class:`~tracseq_kit.client.FastTransport`.

    python bench/client_bench.py [--calls 3000] [--rounds 5] [--seconds 3]

Needs nginx (``apt-get install -y nginx-light``); installs nothing itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable

import httpx
from gateway_common import free_port, nginx, require_tools

from tracseq_kit.client import AsyncTracSeqClient, FastTransport, TracSeqClient
from tracseq_kit.schemas import Template

TEMPLATE = {
    "id": "tpl-0123456789ab",
    "name": "RNA-seq submission",
    "description": "Total RNA for short-read sequencing",
    "category": "submission",
    "tags": ["rna", "illumina"],
    "status": "published",
    "version": 3,
    "fields": [
        {"name": "sample_id", "type": "text", "required": True, "rules": {"unique": True}},
        {"name": "volume_ul", "type": "decimal", "unit": "uL", "rules": {"min_value": "1"}},
        {"name": "concentration", "type": "decimal", "unit": "ng/uL"},
        {"name": "rin", "type": "decimal", "rules": {"min_value": "1", "max_value": "10"}},
        {"name": "organism", "type": "enum", "options": ["human", "mouse", "other"]},
    ],
    "created_by": "alice",
    "created_at": "2026-11-02T09:14:03+00:00",
    "updated_at": "2026-11-20T16:40:11+00:00",
}


def _best_per_call(calls: dict[str, Callable[[], object]], n: int, rounds: int) -> dict[str, float]:
    best = dict.fromkeys(calls, float("inf"))
    for fn in calls.values():  # warm up connections and caches
        for _ in range(200):
            fn()
    for _ in range(rounds):
        for name, fn in calls.items():
            start = time.perf_counter()
            for _ in range(n):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / n)
    return best


async def _abest_per_call(
    calls: dict[str, Callable[[], Awaitable[object]]], n: int, rounds: int
) -> dict[str, float]:
    best = dict.fromkeys(calls, float("inf"))
    for fn in calls.values():
        for _ in range(200):
            await fn()
    for _ in range(rounds):
        for name, fn in calls.items():
            start = time.perf_counter()
            for _ in range(n):
                await fn()
            best[name] = min(best[name], (time.perf_counter() - start) / n)
    return best


def _report(title: str, best: dict[str, float], baseline: str) -> None:
    print(f"\n{title}")
    for name, seconds in best.items():
        ratio = seconds / best[baseline]
        print(f"  {name:44s} {seconds * 1e6:8.1f} us/call   {ratio:5.2f}x of {baseline}")


def sync_bench(url: str, n: int, rounds: int) -> dict[str, float]:
    path = f"/api/templates/{TEMPLATE['id']}"
    with httpx.Client(base_url=url) as http, TracSeqClient(url) as client:
        best = _best_per_call(
            {
                "httpx GET + .json()": lambda: http.get(path).json(),
                "httpx GET + Template.model_validate_json": lambda: Template.model_validate_json(
                    http.get(path).content
                ),
                "TracSeqClient.templates.get": lambda: client.templates.get(TEMPLATE["id"]),
            },
            n,
            rounds,
        )
    _report("blocking, sequential", best, "httpx GET + .json()")
    return best


async def async_bench(url: str, n: int, rounds: int) -> dict[str, float]:
    path = f"/api/templates/{TEMPLATE['id']}"
    async with httpx.AsyncClient(base_url=url) as http, AsyncTracSeqClient(url) as client:

        async def bare() -> object:
            return (await http.get(path)).json()

        async def bare_model() -> object:
            return Template.model_validate_json((await http.get(path)).content)

        async def kit() -> object:
            return await client.templates.get(TEMPLATE["id"])

        best = await _abest_per_call(
            {
                "httpx GET + .json()": bare,
                "httpx GET + Template.model_validate_json": bare_model,
                "AsyncTracSeqClient.templates.get": kit,
            },
            n,
            rounds,
        )
    _report("async, sequential", best, "httpx GET + .json()")
    return best


async def throughput(url: str, seconds: float) -> dict[str, float]:
    results: dict[str, float] = {}

    async def run(name: str, client: AsyncTracSeqClient) -> None:
        async with client:
            for _ in range(100):
                await client.templates.get(TEMPLATE["id"])
            done = 0
            stop = time.perf_counter() + seconds

            async def worker() -> None:
                nonlocal done
                while time.perf_counter() < stop:
                    await client.templates.get(TEMPLATE["id"])
                    done += 1

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(32)))
            results[name] = done / (time.perf_counter() - start)

    await run("AsyncTracSeqClient, httpx default transport", AsyncTracSeqClient(url))
    await run(
        "AsyncTracSeqClient, FastTransport", AsyncTracSeqClient(url, transport=FastTransport())
    )
    base = results["AsyncTracSeqClient, httpx default transport"]
    print("\nasync, 32 concurrent tasks")
    for name, rate in results.items():
        print(f"  {name:44s} {rate:8.0f} calls/s   {rate / base:5.2f}x of httpx default")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput run")
    args = parser.parse_args()
    require_tools("nginx")
    port = free_port()
    body = json.dumps(TEMPLATE, separators=(",", ":"))
    with nginx(port, body=body, content_type="application/json"):
        url = f"http://127.0.0.1:{port}"
        sync = sync_bench(url, args.calls, args.rounds)
        asyn = asyncio.run(async_bench(url, args.calls, args.rounds))
        asyncio.run(throughput(url, args.seconds))
    print("\nkit overhead over bare httpx + .json():")
    for label, best, kit in (
        ("blocking", sync, "TracSeqClient.templates.get"),
        ("async", asyn, "AsyncTracSeqClient.templates.get"),
    ):
        bare = best["httpx GET + .json()"]
        added = best[kit] - bare
        print(f"  {label:9s} {added / bare * 100:+6.1f}%  ({added * 1e6:+.1f} us)")


if __name__ == "__main__":
    main()
