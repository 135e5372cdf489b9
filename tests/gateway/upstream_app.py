"""A small upstream service for gateway tests, run as a real process.

    python upstream_app.py --port P --name NAME

Endpoints: ``/readyz``; ``/echo/...`` answers JSON with the instance name, method,
path, query and headers it saw, and the request body's length; ``/upload`` counts a
streamed body; ``/big?mb=N`` streams N MiB; ``/drip?chunks=N&ms=M`` sends 1 KiB
every M ms; ``/slow?ms=N`` answers after N ms; ``/fail`` answers 503;
``/toggle-ready`` flips the readiness answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

import uvicorn

STATE = {"ready": True, "name": "upstream"}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    query = parse_qs(scope["query_string"].decode())
    size = 0
    more = True
    while more:
        msg = await receive()
        size += len(msg.get("body", b""))
        more = msg.get("more_body", False)
    if path == "/readyz":
        status = 200 if STATE["ready"] else 503
        await _json(send, status, {"ready": STATE["ready"], "name": STATE["name"]})
    elif path == "/toggle-ready":
        STATE["ready"] = not STATE["ready"]
        await _json(send, 200, {"ready": STATE["ready"]})
    elif path == "/big":
        mib = int(query.get("mb", ["1"])[0])
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        chunk = b"x" * (1024 * 1024)
        for _ in range(mib):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/drip":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        for _ in range(int(query.get("chunks", ["100"])[0])):
            await send({"type": "http.response.body", "body": b"d" * 1024, "more_body": True})
            await asyncio.sleep(int(query.get("ms", ["100"])[0]) / 1000)
        await send({"type": "http.response.body", "body": b""})
    elif path == "/slow":
        await asyncio.sleep(int(query.get("ms", ["100"])[0]) / 1000)
        await _json(send, 200, {"name": STATE["name"], "slept": True})
    elif path == "/fail":
        await _json(send, 503, {"name": STATE["name"]})
    else:
        await _json(
            send,
            200,
            {
                "name": STATE["name"],
                "method": scope["method"],
                "path": path,
                "raw_path": scope.get("raw_path", b"").decode(),
                "query": scope["query_string"].decode(),
                "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
                "body_length": size,
            },
        )


async def _json(send: Any, status: int, doc: Any) -> None:
    body = json.dumps(doc).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"connection", b"x-private-hop"),
                (b"x-private-hop", b"secret"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="upstream")
    args = parser.parse_args()
    STATE["name"] = args.name
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="error",
        loop="uvloop",
        http="httptools",
        access_log=False,
    )


if __name__ == "__main__":
    main()
