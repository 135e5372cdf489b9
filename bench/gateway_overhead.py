"""The gateway's own per-request cost, without I/O: the kit against the floor.

Both the kit's gateway (routing, request id, forwarding headers, deadline, breaker,
in-memory rate limiting, metrics) and the floor (a minimal ASGI proxy on the same
pooled-client interface, ``gateway_peers.floor_factory``) are called in-process on one
event loop with the upstream replaced by a fake that answers at once. What is left is
the Python work each adds per request; the difference is what the gateway's features
cost. Best of several rounds (the least disturbed by other processes).

    python bench/gateway_overhead.py [--requests 50000] [--rounds 7]

The end-to-end comparison at equal CPU (servers, sockets, nginx) is
``gateway_bench.py``; this one shows where a change to the request path moves the cost.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import gateway_peers
import uvloop

from tracseq_kit import _http1
from tracseq_kit.gateway import Gateway

_HEADERS = [
    (b"server", b"nginx/1.22.1"),
    (b"date", b"Fri, 04 Dec 2026 14:00:00 GMT"),
    (b"content-type", b"text/plain"),
    (b"content-length", b"11"),
    (b"connection", b"keep-alive"),
]


class _Answer:
    __slots__ = ("complete", "headers", "status")

    def __init__(self) -> None:
        self.status, self.headers, self.complete = 200, _HEADERS, True

    def read_buffered(self) -> bytes:
        return b"hello world"

    def release(self) -> None:
        pass


class _InstantPool:
    """Stands in for ``ConnectionPool``: every request is answered at once."""

    max_head_bytes = 65536

    def __init__(self, **options: Any) -> None:
        pass

    async def request(self, *args: Any, **options: Any) -> _Answer:
        return _Answer()

    async def aclose(self) -> None:
        pass


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    pass


async def _per_request_us(app: Any, n: int) -> float:
    for _ in range(2000):
        await app(_scope(), _receive, _send)
    start = time.perf_counter()
    for _ in range(n):
        await app(_scope(), _receive, _send)
    return (time.perf_counter() - start) / n * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    gateway = Gateway.from_file(str(gateway_peers.kit_config(9)))
    gateway._proxy.connections = _InstantPool()  # type: ignore[assignment]
    os.environ["FLOOR_UPSTREAM"] = "9"
    real = _http1.ConnectionPool
    _http1.ConnectionPool = _InstantPool  # type: ignore[misc,assignment]
    try:
        floor = gateway_peers.floor_factory()
    finally:
        _http1.ConnectionPool = real  # type: ignore[misc]
    floors, kits = [], []
    for _ in range(args.rounds):
        floors.append(await _per_request_us(floor, args.requests))
        kits.append(await _per_request_us(gateway, args.requests))
    f, k = min(floors), min(kits)
    print(f"floor        {f:6.2f} us per request")
    print(f"kit gateway  {k:6.2f} us per request")
    print(f"features     {k - f:6.2f} us per request ({k / f:.1f}x the floor's Python work)")


if __name__ == "__main__":
    uvloop.run(main())
