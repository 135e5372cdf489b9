"""Upstream-call throughput of candidate gateway transports, side by side.

One nginx (one worker) answers ``hello world`` on loopback. Each client makes GET
requests to it for a fixed time, first one at a time (latency-bound), then from 32
concurrent tasks (what a gateway under load does), on uvloop. Prints requests/s and
the ratio to the kit's pooled HTTP/1.1 client.

    python bench/gateway_transports.py [--seconds 3]

Needs nginx (``apt-get install -y nginx-light``); installs nothing itself.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx
import uvloop
from gateway_common import free_port, nginx, require_tools
from httpx_aiohttp import AiohttpTransport

from tracseq_kit._http1 import ConnectionPool, build_head

Call = Callable[[], Awaitable[None]]


async def _run(call: Call, *, seconds: float, concurrency: int) -> float:
    for _ in range(50):  # warm up connections
        await call()
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await call()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


async def bench(port: int, seconds: float) -> list[tuple[str, float, float]]:
    url = f"http://127.0.0.1:{port}/"
    results: list[tuple[str, float, float]] = []

    async def measure(name: str, call: Call) -> None:
        seq = await _run(call, seconds=seconds, concurrency=1)
        conc = await _run(call, seconds=seconds, concurrency=32)
        results.append((name, seq, conc))
        print(f"{name:28s} sequential {seq:8.0f} req/s   32 concurrent {conc:8.0f} req/s")

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits) as client:

        async def httpx_call() -> None:
            r = await client.get(url)
            await r.aread()

        await measure("httpx (default transport)", httpx_call)

    async with httpx.AsyncClient(
        transport=AiohttpTransport(
            client=aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        )
    ) as client2:

        async def httpx_aio_call() -> None:
            r = await client2.get(url)
            await r.aread()

        await measure("httpx + httpx-aiohttp", httpx_aio_call)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:

        async def aiohttp_call() -> None:
            async with session.get(url) as r:
                await r.read()

        await measure("aiohttp ClientSession", aiohttp_call)

    pool = ConnectionPool()
    head = build_head(b"GET", b"/", [(b"host", f"127.0.0.1:{port}".encode())])

    async def kit_call() -> None:
        r = await pool.request("127.0.0.1", port, head)
        if not r.complete:
            async for _ in r.iter_body():
                pass
        else:
            r.read_buffered()

    await measure("kit pooled HTTP/1.1 (httptools)", kit_call)
    await pool.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    require_tools("nginx")
    port = free_port()
    with nginx(port):
        results = uvloop.run(bench(port, args.seconds))
    kit = results[-1]
    print("\nratio to the kit client (sequential / 32 concurrent):")
    for name, seq, conc in results:
        print(f"{name:28s} {seq / kit[1]:5.2f}x / {conc / kit[2]:5.2f}x")


if __name__ == "__main__":
    main()
