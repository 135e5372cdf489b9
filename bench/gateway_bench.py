"""The kit's gateway side by side with reference and peer proxies, at equal CPU.

One nginx worker answers ``hello world`` (the upstream) and, in the same worker, proxies
to it (the reference). Every server process (nginx, each proxy) is pinned to CPU 0 and
wrk (one thread, 32 connections) to CPU 1, so each proxy and its upstream share one core
as nginx's proxy and upstream do. Besides throughput on that core, the CPU time of the
proxy's process tree plus nginx's is summed over the measured run and divided by the
requests served: CPU microseconds per proxied request, proxy and upstream together.

Peers, one after the other: the upstream directly; nginx proxying it; the *floor*, a
minimal ASGI proxy on the kit's pooled HTTP/1.1 client (no features: what any Python
proxy on this transport costs); the kit's gateway (routing, request ids, forwarding
headers, metrics, the pool's circuit breaker and in-memory rate limiting on) on granian
and on uvicorn; a lean aiohttp proxy; a naive FastAPI + httpx proxy.

    python bench/gateway_bench.py [--seconds 3] [--runs 3] [--only floor kit ...]

Goals (issue: the gateway data plane): per CPU-second at least 0.25x nginx, CPU per
request within 1.3x of the floor on the same server, p99 at most 10 ms.

Needs wrk, nginx and taskset (``apt-get install -y nginx-light wrk``); installs nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from gateway_common import (
    cpu_seconds,
    free_port,
    nginx,
    python_server,
    require_tools,
    wrk,
)

HERE = Path(__file__).parent
SERVER_CPU, LOAD_CPU = 0, 1


@dataclass
class Row:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    """CPU microseconds per request: the proxy's process tree plus nginx."""
    errors: int


PEERS = [
    ("floor (granian)", "floor-granian"),
    ("kit gateway (granian)", "kit-granian"),
    ("floor (uvicorn)", "floor"),
    ("kit gateway (uvicorn)", "kit"),
    ("lean aiohttp", "aiohttp"),
    ("naive FastAPI + httpx", "fastapi"),
]


def _measure(name: str, port: int, pids: list[int], args: argparse.Namespace) -> Row | None:
    url = f"http://127.0.0.1:{port}/"
    try:
        wrk(url + "warmup", seconds=1, connections=args.connections, cpu=LOAD_CPU)
        before = sum(cpu_seconds(pid) for pid in pids)
        r = wrk(url, seconds=args.seconds, connections=args.connections, cpu=LOAD_CPU)
        used = sum(cpu_seconds(pid) for pid in pids) - before
    except Exception as exc:  # report and go on with the other targets
        print(f"{name:24s} failed: {exc!r}", flush=True)
        return None
    cpu_us = used / r.requests * 1e6 if r.requests else math.nan
    row = Row(name, r.rps, r.p50_ms, r.p99_ms, cpu_us, r.errors)
    print(
        f"{name:24s} {r.rps:8.0f} req/s  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms"
        f"  {cpu_us:7.1f} us CPU/req  errors {r.errors}",
        flush=True,
    )
    return row


def one_run(args: argparse.Namespace) -> dict[str, Row]:
    up, proxy = free_port(), free_port()
    rows: dict[str, Row] = {}
    with nginx(up, proxy, cpu=SERVER_CPU) as ngx:
        for name, port in (("direct upstream (nginx)", up), ("nginx proxy", proxy)):
            row = _measure(name, port, [ngx.pid], args)
            if row:
                rows[name] = row
        for label, peer in PEERS:
            if args.only and peer not in args.only:
                continue
            port = free_port()
            script = [str(HERE / "gateway_peers.py"), peer, str(port), str(up)]
            with python_server(script, port, cpu=SERVER_CPU) as proc:
                row = _measure(label, port, [proc.pid, ngx.pid], args)
            if row:
                rows[label] = row
    return rows


def report(runs: list[dict[str, Row]]) -> None:
    names = [n for n in runs[0] if all(n in r for r in runs)]
    ref = "nginx proxy"
    print("\nmedian of", len(runs), "run(s); ratios computed within each run, then the median")
    print(
        f"{'':24s} {'req/s':>8s} {'p99 ms':>7s} {'us CPU':>7s} "
        f"{'vs nginx/CPU-s':>15s} {'CPU vs floor':>13s}"
    )
    for name in names:
        rps = statistics.median(r[name].rps for r in runs)
        p99 = statistics.median(r[name].p99_ms for r in runs)
        cpu = statistics.median(r[name].cpu_us for r in runs)
        vs_nginx = statistics.median(r[ref].cpu_us / r[name].cpu_us for r in runs)
        floor = _floor_of(name)
        vs_floor = (
            f"{statistics.median(r[name].cpu_us / r[floor].cpu_us for r in runs):12.2f}x"
            if floor in runs[0]
            else f"{'':13s}"
        )
        print(f"{name:24s} {rps:8.0f} {p99:7.2f} {cpu:7.1f} {vs_nginx:14.2f}x {vs_floor}")
    for server in ("granian", "uvicorn"):
        kit, floor = f"kit gateway ({server})", f"floor ({server})"
        if kit not in names or floor not in names:
            continue
        per_run = [
            (r[ref].cpu_us / r[kit].cpu_us, r[kit].cpu_us / r[floor].cpu_us, r[kit].p99_ms)
            for r in runs
        ]
        print(f"\ngoals, kit gateway on {server} (each run):")
        for i, (n, f, p) in enumerate(per_run, 1):
            print(
                f"  run {i}: {n:.2f}x nginx per CPU-s (>= 0.25) | {f:.2f}x the floor's CPU"
                f" (<= 1.3) | p99 {p:.2f} ms (<= 10)"
            )
    sys.stdout.flush()


def _floor_of(name: str) -> str:
    if name.startswith("kit gateway (") or name.startswith("floor ("):
        return "floor (" + name.split("(", 1)[1]
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="peer names to run (default: all)")
    args = parser.parse_args()
    require_tools("nginx", "wrk", "taskset")
    if (os.cpu_count() or 1) < 2:
        sys.exit("needs two CPUs: one for the servers, one for wrk")
    runs = []
    for i in range(args.runs):
        print(f"\n-- run {i + 1} of {args.runs}", flush=True)
        runs.append(one_run(args))
    report(runs)


if __name__ == "__main__":
    main()
