"""FastTransport against a real HTTP server (uvicorn on loopback): bodies both ways,
streamed responses, HEAD, stale keep-alive connections, errors as httpx's."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from services_support import serve

from tracseq_kit import APIConnectionError, ConfigurationError
from tracseq_kit.client import AsyncTracSeqClient, FastTransport

pytestmark = pytest.mark.anyio

TEMPLATE = {"id": "tpl-1", "name": "RNA", "category": "submission", "status": "draft"}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/stream":  # chunked: no content-length, several body messages
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(50):
            await send({"type": "http.response.body", "body": b"x" * 10_000, "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})
        return
    if path.endswith("/validate"):
        payload = json.dumps({"valid": True, "rows_checked": len(body)}).encode()
    elif path == "/echo":
        payload = json.dumps(
            {"method": scope["method"], "size": len(body), "query": scope["query_string"].decode()}
        ).encode()
    else:
        payload = json.dumps(TEMPLATE).encode()
    headers = [(b"content-type", b"application/json"), (b"x-request-id", b"r-1")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve(app) as url:
        yield url


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_requests_and_responses_round_trip(server: str) -> None:
    async with httpx.AsyncClient(transport=FastTransport(), base_url=server) as http:
        r = await http.get("/api/templates/tpl-1")
        assert r.status_code == 200 and r.json() == TEMPLATE
        assert r.headers["x-request-id"] == "r-1" and r.http_version == "HTTP/1.1"
        r = await http.post("/echo", params={"a": "b c"}, content=b"z" * 300_000)
        assert r.json() == {"method": "POST", "size": 300_000, "query": "a=b+c"}

        async def chunks() -> Any:  # a streamed request body (chunked by httpx)
            for _ in range(3):
                yield b"y" * 1000

        r = await http.put("/echo", content=chunks())
        assert r.json()["size"] == 3000
        r = await http.head("/api/templates/tpl-1")
        assert r.status_code == 200 and r.content == b""
        async with http.stream("GET", "/stream") as streamed:
            received = b"".join([c async for c in streamed.aiter_bytes()])
        assert len(received) == 500_003 and received.endswith(b"end")
        # the connection went back to the pool and still works
        assert (await http.get("/api/templates/tpl-1")).json() == TEMPLATE


async def test_the_typed_client_on_it_with_upload_progress(server: str) -> None:
    seen: list[tuple[int, int]] = []
    async with AsyncTracSeqClient(server, transport=FastTransport()) as c:
        assert (await c.templates.get("tpl-1")).name == "RNA"
        report = await c.templates.validate_submission(
            "tpl-1", b"a,b\n" * 50_000, progress=lambda d, t: seen.append((d, t))
        )
        assert report.rows_checked == 200_000  # the server got every byte
        response = await c.request("POST", "/echo", content=b"a,b\n" * 10)
        assert response.json()["size"] == 40
    assert seen[-1] == (200_000, 200_000)


async def test_a_connection_the_server_closed_while_idle_is_replaced(server: str) -> None:
    transport = FastTransport()
    async with httpx.AsyncClient(transport=transport, base_url=server) as http:
        assert (await http.get("/x")).status_code == 200
        for idle in transport._pool._idle.values():  # the server drops keep-alive sockets
            for conn in idle:
                assert conn.transport is not None
                conn.transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
        assert (await http.get("/x")).json() == TEMPLATE


async def test_errors_are_httpx_errors_the_client_maps() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    async with httpx.AsyncClient(transport=FastTransport()) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/")
        with pytest.raises(ConfigurationError, match="plain http"):
            await http.get("https://127.0.0.1:1/")
    async with AsyncTracSeqClient(
        f"http://127.0.0.1:{port}", transport=FastTransport(), retry=None
    ) as c:
        with pytest.raises(APIConnectionError):
            await c.templates.get("tpl-1")
