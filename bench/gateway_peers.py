"""Peer proxies for ``gateway_bench.py``, each run as its own process.

python bench/gateway_peers.py fastapi|aiohttp|kit|kit-granian LISTEN_PORT UPSTREAM_PORT
"""

# no `from __future__ import annotations`: FastAPI resolves the handler annotations
import sys
import tempfile
from pathlib import Path


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

    main(["--config", str(kit_config(upstream)), "--port", str(port)])


def kit_gateway_granian(port: int, upstream: int) -> None:
    """The kit's gateway on granian's ASGI server (``--server granian``)."""
    from tracseq_kit.gateway._cli import main

    main(["--config", str(kit_config(upstream)), "--port", str(port), "--server", "granian"])


PEERS = {
    "fastapi": fastapi_proxy,
    "aiohttp": aiohttp_proxy,
    "kit": kit_gateway,
    "kit-granian": kit_gateway_granian,
}

if __name__ == "__main__":
    PEERS[sys.argv[1]](int(sys.argv[2]), int(sys.argv[3]))
