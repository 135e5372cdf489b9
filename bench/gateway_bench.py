"""The kit's gateway side by side with reference and peer proxies, in one run.

One nginx worker answers ``hello world`` (the upstream). wrk (one thread, 32
connections by default) then drives, one after the other: the upstream directly;
nginx proxying it (reference); a naive FastAPI catch-all proxy on one shared httpx
client; a lean aiohttp proxy; the kit's gateway (routing, request ids, forwarding
headers, metrics, the pool's circuit breaker and in-memory rate limiting on) on uvicorn
and on granian. Each proxy is one process.

    python bench/gateway_bench.py [--seconds 3] [--connections 32]

Needs wrk and nginx (``apt-get install -y nginx-light wrk``); installs nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway_common import WrkResult, free_port, nginx, python_server, require_tools, wrk

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", nargs="*", help="peer names to run (default: all)")
    args = parser.parse_args()
    require_tools("nginx", "wrk")
    up, proxy = free_port(), free_port()
    results: dict[str, WrkResult] = {}

    def run(name: str, port: int) -> None:
        try:
            wrk(f"http://127.0.0.1:{port}/warmup", seconds=1, connections=args.connections)
            r = wrk(f"http://127.0.0.1:{port}/", seconds=args.seconds, connections=args.connections)
        except Exception as exc:  # report and go on with the other targets
            print(f"{name:26s} failed: {exc!r}", flush=True)
            return
        results[name] = r
        print(
            f"{name:26s} {r.rps:9.0f} req/s  p50 {r.p50_ms:7.2f} ms  p99 {r.p99_ms:7.2f} ms"
            f"  errors {r.errors}",
            flush=True,
        )

    peers = [
        ("naive FastAPI + httpx", "fastapi"),
        ("lean aiohttp", "aiohttp"),
        ("kit gateway (uvicorn)", "kit"),
        ("kit gateway (granian)", "kit-granian"),
    ]
    with nginx(up, proxy):
        run("direct upstream (nginx)", up)
        run("nginx proxy", proxy)
        for label, peer in peers:
            if args.only and peer not in args.only:
                continue
            port = free_port()
            script = [str(HERE / "gateway_peers.py"), peer, str(port), str(up)]
            with python_server(script, port):
                run(label, port)
    kit = results.get("kit gateway (uvicorn)")
    if kit is None or "nginx proxy" not in results:
        return
    print("\nkit gateway (uvicorn) relative to:")
    for name, r in results.items():
        print(f"  {name:26s} {kit.rps / r.rps:6.2f}x throughput")
    nginx_share = kit.rps / results["nginx proxy"].rps
    aio = results.get("lean aiohttp")
    print(f"\ngoal >=25% of nginx: {nginx_share:.0%}")
    if aio:
        print(f"goal >=1.5x lean aiohttp: {kit.rps / aio.rps:.2f}x")
    print(f"goal p99 <=10 ms: {kit.p99_ms:.2f} ms")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
