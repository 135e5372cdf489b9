"""Requests/s of a trivial endpoint: the full chassis against bare apps, in one run.

    python bench/chassis_bench.py [--seconds 5] [--rounds 3] [--connections 32] [--skip-server]
    python bench/chassis_bench.py --layers    # what each middleware layer costs alone

Two measurements, each interleaving the variants round by round and reporting medians:

1. in-process: the ASGI app is called directly (no server, no sockets). This isolates the
   per-request cost of framework plus middleware, so it is the harshest ratio.
2. server: each app runs in its own uvicorn process (httptools, uvloop, one worker) and a
   load generator drives it over loopback for ``--seconds``. The load generator is ``wrk``
   if it is on PATH (``apt-get install -y wrk``); otherwise a keep-alive asyncio client in
   this script is used, which is slower, so ratios are less sharp.

Variants: bare Starlette, Starlette with the chassis's middleware layers, bare FastAPI, and
the chassis (``create_service`` with default
settings: a FastAPI app with request id, trace context with ``OTEL_TRACES_EXPORTER=none``,
metrics, JSON access log to /dev/null, problem+json, body limit), the chassis without the
access log, and the chassis recording every span into a batch processor (what a
configured exporter costs, minus the network). The goal is chassis >= 75% of bare FastAPI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

VARIANTS = (
    "bare-starlette",
    "starlette-chassis-middleware",
    "bare-fastapi",
    "chassis",
    "chassis-access-log",
    "chassis-recording-spans",
)


def build(variant: str) -> Any:
    if variant == "starlette-chassis-middleware":
        # The same pure-ASGI layers create_service stacks, on a plain Starlette app: what
        # the chassis would cost had Starlette been chosen as the framework.
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        from tracseq_kit.asgi import (
            ProblemDetailsMiddleware,
            RequestIdMiddleware,
            TracingMiddleware,
        )
        from tracseq_kit.service import (
            AccessLogMiddleware,
            BodySizeLimitMiddleware,
            MetricsMiddleware,
            install_exception_handlers,
        )
        from tracseq_kit.telemetry import configure_logging, configure_telemetry

        configure_logging(service="bench", fmt="json")
        provider = configure_telemetry(service_name="bench").tracer_provider

        async def ping_(request: Any) -> JSONResponse:
            return JSONResponse({"ok": True})

        app = Starlette(
            routes=[Route("/ping", ping_)],
            middleware=[
                Middleware(RequestIdMiddleware),
                Middleware(TracingMiddleware, tracer_provider=provider),
                Middleware(MetricsMiddleware),
                Middleware(AccessLogMiddleware),
                Middleware(ProblemDetailsMiddleware),
                Middleware(BodySizeLimitMiddleware, max_bytes=1_048_576),
            ],
        )
        install_exception_handlers(app)
        return app

    if variant == "bare-starlette":
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def ping(request: Any) -> JSONResponse:
            return JSONResponse({"ok": True})

        return Starlette(routes=[Route("/ping", ping)])

    if variant == "bare-fastapi":
        from fastapi import FastAPI

        # FastAPI's native OpenTelemetry switches itself on when any global provider is
        # installed (the chassis variant installs one in this process); "bare" means off.
        app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})
    else:
        from tracseq_kit.service import create_service
        from tracseq_kit.settings import ServiceSettings

        settings = ServiceSettings(
            service_name="bench",
            log_format="json",
            access_log=variant == "chassis-access-log",
        )
        provider = None
        if variant == "chassis-recording-spans":
            # Spans recorded and handed to a batch processor whose exporter drops them:
            # the cost of tracing with an exporter configured, minus the network.
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import (
                BatchSpanProcessor,
                SpanExporter,
                SpanExportResult,
            )

            class Discard(SpanExporter):
                def export(self, spans: Any) -> SpanExportResult:
                    return SpanExportResult.SUCCESS

            provider = TracerProvider()
            provider.add_span_processor(BatchSpanProcessor(Discard()))
        app = create_service(settings, tracer_provider=provider)

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    return app


# -- in-process --------------------------------------------------------------------------


async def _drive_count(app: Any, count: int) -> float:
    scope_template = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/ping",
        "raw_path": b"/ping",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"localhost"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message

    start = time.perf_counter()
    for _ in range(count):
        await app(dict(scope_template, state={}), receive, send)
    return count / (time.perf_counter() - start)


async def _with_lifespan(app: Any, body: Callable[[], Any]) -> Any:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, queue.get, sent.put)
    )
    assert (await sent.get())["type"] == "lifespan.startup.complete"
    try:
        return await body()
    finally:
        await queue.put({"type": "lifespan.shutdown"})
        await task


def in_process(seconds: float, rounds: int) -> dict[str, float]:
    """All variants in one event loop, alternating batches of 200 requests, so that load
    from other processes hits every variant alike."""
    import logging

    apps = {v: build(v) for v in VARIANTS}
    # The chassis logs to stdout; send it where the server benchmark sends it.
    devnull = open(os.devnull, "w")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)

    async def run_all() -> dict[str, float]:
        from contextlib import AsyncExitStack, asynccontextmanager

        @asynccontextmanager
        async def started(app: Any) -> Any:
            ready, done = asyncio.Event(), asyncio.Event()

            async def hold() -> None:
                ready.set()
                await done.wait()

            task = asyncio.create_task(_with_lifespan(app, hold))
            await ready.wait()
            try:
                yield
            finally:
                done.set()
                await task

        async with AsyncExitStack() as stack:
            for app in apps.values():
                await stack.enter_async_context(started(app))
            spent = dict.fromkeys(apps, 0.0)
            done_requests = dict.fromkeys(apps, 0)
            total = seconds * rounds * len(apps)
            begin = time.perf_counter()
            while time.perf_counter() - begin < total:
                for variant, app in apps.items():
                    rate = await _drive_count(app, 200)
                    spent[variant] += 200 / rate
                    done_requests[variant] += 200
            return {v: done_requests[v] / spent[v] for v in apps}

    return asyncio.run(run_all())


def layers(seconds: float) -> dict[str, float]:
    """Microseconds each chassis layer adds alone to a bare FastAPI request (in-process)."""
    import logging

    from fastapi import FastAPI
    from starlette.middleware import Middleware

    from tracseq_kit.asgi import ProblemDetailsMiddleware, RequestIdMiddleware, TracingMiddleware
    from tracseq_kit.service import (
        AccessLogMiddleware,
        BodySizeLimitMiddleware,
        MetricsMiddleware,
    )
    from tracseq_kit.telemetry import configure_logging, configure_telemetry

    configure_logging(service="bench", fmt="json", stream=open(os.devnull, "w"))
    provider = configure_telemetry(service_name="bench").tracer_provider
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    recording = TracerProvider()
    recording.add_span_processor(BatchSpanProcessor(Discard()))
    stacks: dict[str, list[Middleware]] = {
        "none": [],
        "request id": [Middleware(RequestIdMiddleware)],
        "tracing (no exporter: ids only)": [
            Middleware(TracingMiddleware, tracer_provider=provider)
        ],
        "tracing (recording spans)": [Middleware(TracingMiddleware, tracer_provider=recording)],
        "metrics": [Middleware(MetricsMiddleware)],
        "access log (JSON line)": [Middleware(AccessLogMiddleware)],
        "problem+json": [Middleware(ProblemDetailsMiddleware)],
        "body limit": [Middleware(BodySizeLimitMiddleware, max_bytes=1 << 20)],
    }
    apps = {}
    for name, stack in stacks.items():
        app = FastAPI(
            telemetry={"tracing": False, "metrics": False, "logs": False}, middleware=stack
        )

        @app.get("/ping")
        async def ping() -> dict[str, bool]:
            return {"ok": True}

        apps[name] = app
    logging.getLogger("tracseq_kit.access").setLevel(logging.INFO)

    async def run_all() -> dict[str, float]:
        spent = dict.fromkeys(apps, 0.0)
        count = 0
        begin = time.perf_counter()
        while time.perf_counter() - begin < seconds * len(apps):
            for name, app in apps.items():
                spent[name] += 200 / await _drive_count(app, 200)
            count += 200
        per_request = {n: t / count * 1e6 for n, t in spent.items()}
        return {n: us - per_request["none"] if n != "none" else us for n, us in per_request.items()}

    return asyncio.run(run_all())


# -- real server -------------------------------------------------------------------------


def serve(variant: str, port: int) -> None:
    import uvicorn

    app = build(variant)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        lifespan="on",
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not come up")


def _wrk(port: int, seconds: float, connections: int) -> float:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"http://127.0.0.1:{port}/ping",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match or "Non-2xx" in out:
        raise RuntimeError(f"wrk failed:\n{out}")
    return float(match.group(1))


async def _py_load(port: int, seconds: float, connections: int) -> float:
    request = b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    deadline = time.perf_counter() + seconds
    counts = [0] * connections

    async def worker(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            counts[i] += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    return sum(counts) / (time.perf_counter() - start)


def server(seconds: float, rounds: int, connections: int) -> tuple[str, dict[str, float]]:
    tool = "wrk" if shutil.which("wrk") else "python keep-alive client (wrk not found)"
    results: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for _ in range(rounds):
        for variant in VARIANTS:
            port = _free_port()
            env = dict(os.environ, OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
            proc = subprocess.Popen(
                [sys.executable, __file__, "--serve", variant, "--port", str(port)],
                stdout=subprocess.DEVNULL,
                env=env,
            )
            try:
                _wait_ready(port)
                if shutil.which("wrk"):
                    rate = _wrk(port, seconds, connections)
                else:
                    rate = asyncio.run(_py_load(port, seconds, connections))
                results[variant].append(rate)
            finally:
                proc.terminate()
                proc.wait(10)
    return tool, {v: statistics.median(r) for v, r in results.items()}


def report(title: str, rates: dict[str, float]) -> None:
    print(f"\n{title}")
    print(f"  {'variant':<30}{'req/s':>10}{'vs bare-fastapi':>18}{'vs bare-starlette':>20}")
    for variant, rate in rates.items():
        print(
            f"  {variant:<30}{rate:>10.0f}"
            f"{rate / rates['bare-fastapi']:>18.2f}{rate / rates['bare-starlette']:>20.2f}"
        )
    cost = 1 - rates["chassis"] / rates["bare-fastapi"]
    verdict = "meets" if cost <= 0.25 else "MISSES"
    print(f"  chassis costs {cost:.0%} of bare FastAPI throughput ({verdict} the <=25% goal)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument(
        "--layers", action="store_true", help="only: microseconds each layer adds, in-process"
    )
    parser.add_argument("--serve", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {args.rounds} rounds")
    if args.layers:
        costs = layers(args.seconds)
        print(f"\nbare FastAPI request: {costs.pop('none'):.1f} us; each layer alone adds:")
        for name, us in costs.items():
            print(f"  {name:<34}{us:>6.1f} us")
        return
    if not args.skip_in_process:
        report(
            f"in-process ASGI calls (batches of 200 alternating, {args.seconds * args.rounds:g}s "
            "per variant)",
            in_process(args.seconds, args.rounds),
        )
    if not args.skip_server:
        tool, rates = server(args.seconds, args.rounds, args.connections)
        report(
            f"uvicorn over loopback, {tool}, {args.connections} connections "
            f"({args.seconds:g}s per variant per round)",
            rates,
        )


if __name__ == "__main__":
    main()
