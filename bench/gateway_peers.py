"""Peer proxies for ``gateway_bench.py``, each run as its own process.

python bench/gateway_peers.py PEER LISTEN_PORT UPSTREAM_PORT

PEER: fastapi | aiohttp | floor | floor-granian | kit | kit-granian
"""

# no `from __future__ import annotations`: FastAPI resolves the handler annotations
import os
import sys
import tempfile
from pathlib import Path
from typing import Any


def fastapi_proxy(port: int, upstream: int) -> None:
    """The naive catch-all: FastAPI + one shared httpx.AsyncClient."""
    import httpx
    import uvicorn
    from fastapi import FastAPI, Request, Response

    app = FastAPI()
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{upstream}")

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def proxy(path: str, request: Request) -> Response:
        r = await client.request(
            request.method,
            "/" + path,
            content=await request.body(),
            headers=[(k, v) for k, v in request.headers.items() if k != "host"],
        )
        return Response(r.content, status_code=r.status_code, headers=dict(r.headers))

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def aiohttp_proxy(port: int, upstream: int) -> None:
    """A lean aiohttp server + aiohttp client proxy."""
    import aiohttp
    from aiohttp import web

    HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}

    async def on_startup(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))

    async def handler(request: web.Request) -> web.Response:
        session: aiohttp.ClientSession = request.app["session"]
        async with session.request(
            request.method,
            f"http://127.0.0.1:{upstream}{request.rel_url}",
            headers={k: v for k, v in request.headers.items() if k.lower() not in HOP},
            data=await request.read() if request.can_read_body else None,
        ) as r:
            body = await r.read()
            headers = {k: v for k, v in r.headers.items() if k.lower() not in HOP}
            return web.Response(body=body, status=r.status, headers=headers)

    async def on_cleanup(app: web.Application) -> None:
        await app["session"].close()

    app = web.Application()
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_route("*", "/{tail:.*}", handler)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def floor_factory() -> Any:
    """The Python floor: a minimal ASGI proxy on the kit's pooled HTTP/1.1 client.

    No routing, no request ids, no forwarding headers, no breaker, no limits, no
    metrics: what any Python proxy on this transport and server costs at least.
    """
    from tracseq_kit._http1 import ConnectionPool, build_head

    upstream = int(os.environ["FLOOR_UPSTREAM"])
    pool = ConnectionPool()
    host = f"127.0.0.1:{upstream}".encode()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        headers = [(b"host", host), *(h for h in scope["headers"] if h[0] != b"host")]
        qs = scope["query_string"]
        target = scope["raw_path"] + b"?" + qs if qs else scope["raw_path"]
        resp = await pool.request(
            "127.0.0.1", upstream, build_head(scope["method"].encode(), target, headers)
        )
        if resp.complete:
            body = resp.read_buffered()
        else:
            body = b"".join([c async for c in resp.iter_body()])
        await send({"type": "http.response.start", "status": resp.status, "headers": resp.headers})
        await send({"type": "http.response.body", "body": body})

    return app


def floor(port: int, upstream: int) -> None:
    """The floor on uvicorn (uvloop + httptools)."""
    import uvicorn

    os.environ["FLOOR_UPSTREAM"] = str(upstream)
    uvicorn.run(
        floor_factory(),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="error",
        access_log=False,
        lifespan="on",
    )


def floor_granian(port: int, upstream: int) -> None:
    """The floor on granian (uvloop), one worker."""
    from granian import Granian
    from granian.constants import Interfaces, Loops

    os.environ["FLOOR_UPSTREAM"] = str(upstream)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
    )
    Granian(
        "gateway_peers:floor_factory",
        address="127.0.0.1",
        port=port,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,
        workers=1,
        log_enabled=False,
        factory=True,
    ).serve()


def kit_config(upstream: int) -> Path:
    path = Path(tempfile.mkdtemp(prefix="gwbench-")) / "gateway.toml"
    path.write_text(
        f"""
[pools.upstream]
instances = ["127.0.0.1:{upstream}"]
health_path = "/"
[[routes]]
prefix = "/"
upstream = "upstream"
rate_limit = "default"

# Rate limiting on, in memory, with a quota wrk cannot exhaust: the decision is made
# (and its headers sent) on every request, nothing is rejected.
[rate_limits.policies.default]
limit = 1000000000
period = 60
"""
    )
    return path


def kit_gateway(port: int, upstream: int) -> None:
    """The kit's gateway on uvicorn (uvloop + httptools): routing, request ids, the
    pool's circuit breaker and rate limiting (memory) on."""
    from tracseq_kit.gateway._cli import main

    main(["--config", str(kit_config(upstream)), "--port", str(port), "--server", "uvicorn"])


def kit_gateway_granian(port: int, upstream: int) -> None:
    """The kit's gateway on granian's ASGI server (``--server granian``)."""
    from tracseq_kit.gateway._cli import main

    main(["--config", str(kit_config(upstream)), "--port", str(port), "--server", "granian"])


PEERS = {
    "fastapi": fastapi_proxy,
    "aiohttp": aiohttp_proxy,
    "floor": floor,
    "floor-granian": floor_granian,
    "kit": kit_gateway,
    "kit-granian": kit_gateway_granian,
}

if __name__ == "__main__":
    PEERS[sys.argv[1]](int(sys.argv[2]), int(sys.argv[3]))
