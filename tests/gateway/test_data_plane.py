"""The gateway's data plane at the socket level, under uvicorn and under granian.

A scripted upstream misbehaves in one precise way per path; a raw client reads every
byte the gateway sends. One response per request, never another caller's bytes, never
a write sent twice, every framing or protocol error a 400/502/504 problem, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import h11
import pytest
from raw_support import (
    Conn,
    GatewayProcess,
    ScriptedUpstream,
    parse_response,
    raw_exchange,
    request,
)

PROBLEM = b"application/problem+json"
STREAM_BYTES = 32 * 1024 * 1024


async def ok(req: h11.Request, body: bytes, conn: Conn) -> None:
    conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


async def inject_idle(req: h11.Request, body: bytes, conn: Conn) -> None:
    conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
    await conn.writer.drain()
    await asyncio.sleep(0.1)  # the connection is idle in the gateway's pool by now
    conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ninjected")


async def two(req: h11.Request, body: bytes, conn: Conn) -> None:
    conn.write(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 404 Not Found\r\nX-Evil: 1\r\nContent-Length: 6\r\n\r\nsecret"
    )


async def trailers(req: h11.Request, body: bytes, conn: Conn) -> None:
    conn.write(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Set-Cookie\r\n\r\n"
        b"2\r\nok\r\n0\r\nSet-Cookie: session=stolen\r\n\r\n"
    )


async def broken_body(req: h11.Request, body: bytes, conn: Conn) -> None:
    conn.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nxx\r\n")


async def hang_up(req: h11.Request, body: bytes, conn: Conn) -> None:
    conn.writer.close()  # received the request, went away without answering


_keys_seen: set[str] = set()


async def hang_up_once(req: h11.Request, body: bytes, conn: Conn) -> None:
    key = dict(req.headers).get(b"idempotency-key", b"").decode()
    if key not in _keys_seen:
        _keys_seen.add(key)
        conn.writer.close()
        return
    conn.write(b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")


async def echo_headers(req: h11.Request, body: bytes, conn: Conn) -> None:
    data = json.dumps([[k.decode(), v.decode()] for k, v in req.headers]).encode()
    conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))


async def connection_lines(req: h11.Request, body: bytes, conn: Conn) -> None:
    conn.write(
        b"HTTP/1.1 200 OK\r\nConnection: x-a\r\nConnection: x-b\r\nX-A: 1\r\nX-B: 2\r\n"
        b"X-Kept: 3\r\nContent-Length: 2\r\n\r\nok"
    )


async def big_head(req: h11.Request, body: bytes, conn: Conn) -> None:
    conn.write(b"HTTP/1.1 200 OK\r\n" + b"X-Filler: " + b"a" * 200_000 + b"\r\n")
    conn.write(b"Content-Length: 2\r\n\r\nok")


async def head_with_body(req: h11.Request, body: bytes, conn: Conn) -> None:
    conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")


async def stream(req: h11.Request, body: bytes, conn: Conn) -> None:
    conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % STREAM_BYTES)
    block = b"x" * 65536
    for _ in range(STREAM_BYTES // len(block)):
        conn.write(block)
        await conn.writer.drain()


BEHAVIOURS = {
    "/ok": ok,
    "/inject-idle": inject_idle,
    "/two": two,
    "/trailers": trailers,
    "/broken-body": broken_body,
    "/hang-up": hang_up,
    "/hang-up-once": hang_up_once,
    "/echo-headers": echo_headers,
    "/connection-lines": connection_lines,
    "/big-head": big_head,
    "/head-with-body": head_with_body,
    "/stream": stream,
}


def _config(port: int) -> str:
    return f"""
client_timeout = 3.0
[pools.up]
instances = ["127.0.0.1:{port}"]
health_path = "/ok"
eject_after = 1000
[[routes]]
prefix = "/stream"
upstream = "up"
timeout = 1.0
[[routes]]
prefix = "/"
upstream = "up"
timeout = 5.0
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    up = ScriptedUpstream(dict(BEHAVIOURS)).start()
    yield up
    up.stop()


@pytest.fixture(scope="module", params=["uvicorn", "granian"])
def gateway(
    request: pytest.FixtureRequest,
    upstream: ScriptedUpstream,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    tmp: Path = tmp_path_factory.mktemp(request.param)
    gw = GatewayProcess(_config(upstream.port), tmp, request.param)
    yield gw
    log = gw.stop()
    assert "Traceback" not in log, log[-3000:]


def _get(gw: GatewayProcess, path: str, *headers: str) -> object:
    return raw_exchange(gw.port, request("GET", path, *headers))


def _settle(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def _assert_problem(resp: object, status: int) -> None:
    assert resp.status == status, resp  # type: ignore[attr-defined]
    assert resp.header(b"content-type") == PROBLEM  # type: ignore[attr-defined]
    doc = json.loads(resp.body)  # type: ignore[attr-defined]
    assert doc["status"] == status and doc["request_id"]


def test_bytes_sent_on_an_idle_connection_never_reach_the_next_caller(
    gateway: GatewayProcess, upstream: ScriptedUpstream
) -> None:
    first = raw_exchange(gateway.port, request("GET", "/inject-idle"))
    assert (first.status, first.body) == (200, b"first")
    closed = upstream.closed_connections
    _settle(lambda: upstream.closed_connections > closed)  # the gateway dropped it
    for _ in range(5):
        nxt = raw_exchange(gateway.port, request("GET", "/ok"))
        assert (nxt.status, nxt.body, nxt.trailing) == (200, b"ok", b"")


def test_two_responses_in_one_packet_give_the_first_only(gateway: GatewayProcess) -> None:
    resp = raw_exchange(gateway.port, request("GET", "/two"))
    assert (resp.status, resp.body, resp.trailing) == (200, b"ok", b"")
    assert resp.header(b"x-evil") is None
    assert resp.header(b"content-length") in (b"2", None)
    nxt = raw_exchange(gateway.port, request("GET", "/ok"))
    assert (nxt.status, nxt.body) == (200, b"ok")


def test_trailers_never_become_headers(gateway: GatewayProcess) -> None:
    resp = raw_exchange(gateway.port, request("GET", "/trailers"))
    assert (resp.status, resp.body) == (200, b"ok")
    assert resp.header(b"set-cookie") is None
    assert resp.header(b"trailer") is None


def test_a_broken_body_after_a_good_head_is_a_502_counted_as_a_failure(
    gateway: GatewayProcess,
) -> None:
    before = _outcomes(gateway, "protocol_error")
    resp = raw_exchange(gateway.port, request("GET", "/broken-body"))
    _assert_problem(resp, 502)
    assert _outcomes(gateway, "protocol_error") == before + 1


def test_a_bodyless_post_that_reached_the_upstream_is_never_sent_twice(
    gateway: GatewayProcess, upstream: ScriptedUpstream
) -> None:
    assert raw_exchange(gateway.port, request("GET", "/ok")).status == 200  # pooled
    before = upstream.count("POST", "/hang-up")
    resp = raw_exchange(gateway.port, request("POST", "/hang-up", "Content-Length: 0"))
    _assert_problem(resp, 502)
    resp = raw_exchange(gateway.port, request("POST", "/hang-up", body=b'{"a": 1}'))
    _assert_problem(resp, 502)
    assert upstream.count("POST", "/hang-up") == before + 2  # once each


def test_a_post_with_an_idempotency_key_may_be_sent_again(
    gateway: GatewayProcess, upstream: ScriptedUpstream
) -> None:
    # the keep-alive race: a reused connection closes just as the request goes out
    assert raw_exchange(gateway.port, request("GET", "/ok")).status == 200  # pooled
    before = upstream.count("POST", "/hang-up-once")
    key = f"Idempotency-Key: k-{time.monotonic_ns()}"
    resp = raw_exchange(gateway.port, request("POST", "/hang-up-once", key, "Content-Length: 0"))
    assert (resp.status, resp.body) == (201, b"done")
    assert upstream.count("POST", "/hang-up-once") == before + 2


def test_every_connection_line_names_hop_by_hop_headers_both_ways(
    gateway: GatewayProcess,
) -> None:
    resp = raw_exchange(
        gateway.port,
        request(
            "GET",
            "/echo-headers",
            "Connection: x-a",
            "Connection: x-b, X-C",
            "X-A: 1",
            "X-B: 2",
            "X-C: 3",
            "X-Kept: 4",
        ),
    )
    seen = {name for name, _ in json.loads(resp.body)}
    assert not seen & {"x-a", "x-b", "x-c", "connection"}
    assert "x-kept" in seen
    resp = raw_exchange(gateway.port, request("GET", "/connection-lines"))
    assert resp.header(b"x-a") is None and resp.header(b"x-b") is None
    assert resp.header(b"x-kept") == b"3"


def test_an_oversized_response_head_is_a_502(gateway: GatewayProcess) -> None:
    _assert_problem(raw_exchange(gateway.port, request("GET", "/big-head")), 502)


def test_a_body_sent_with_a_head_response_is_never_relayed(gateway: GatewayProcess) -> None:
    resp = raw_exchange(gateway.port, request("HEAD", "/head-with-body"))
    assert resp.status == 200 and resp.body == b"" and resp.trailing == b""
    nxt = raw_exchange(gateway.port, request("GET", "/ok"))
    assert (nxt.status, nxt.body) == (200, b"ok")


@pytest.mark.parametrize(
    "chunk_size", [b"FFFFFFFFFFFFFFFFFFFFFFFF", b"ZZ", b"-1", b"1;\x00"], ids=repr
)
def test_request_framing_errors_are_400_problems(
    gateway: GatewayProcess, chunk_size: bytes
) -> None:
    raw = (
        b"POST /ok HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunk_size + b"\r\nab\r\n0\r\n\r\n"
    )
    resp = raw_exchange(gateway.port, raw)
    assert resp.status == 400, resp
    assert resp.header(b"content-type") == PROBLEM


def test_repeated_single_valued_request_headers_are_400(gateway: GatewayProcess) -> None:
    for repeated in ("Idempotency-Key: a", "Authorization: Bearer x"):
        resp = raw_exchange(gateway.port, request("GET", "/ok", repeated, repeated))
        _assert_problem(resp, 400)


def test_a_slow_client_gets_the_whole_body_the_route_timeout_is_the_upstreams(
    gateway: GatewayProcess,
) -> None:
    # the route's 1 s timeout bounds the upstream; the client pauses 2 s (< 3 s
    # client_timeout) before it starts reading, and still gets every byte
    with _small_window(gateway.port) as sock:
        sock.sendall(request("GET", "/stream"))
        time.sleep(2.0)
        received = 0
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    assert received > STREAM_BYTES  # the head plus every body byte


def test_a_client_that_stops_reading_is_cut_after_client_timeout(
    gateway: GatewayProcess, upstream: ScriptedUpstream
) -> None:
    before = _outcomes(gateway, "timeout")
    with _small_window(gateway.port) as sock:
        sock.sendall(request("GET", "/stream"))
        time.sleep(6.0)  # twice client_timeout without reading
        received = 0
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
    assert received < STREAM_BYTES
    assert _outcomes(gateway, "timeout") == before  # the upstream is not blamed
    assert "client_timeout" in gateway.log.read_text()


def _small_window(port: int) -> socket.socket:
    # a small receive buffer, set before connecting (it sizes the TCP window), so a
    # client that does not read blocks the gateway after a few hundred KiB
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", port))
    return sock


def _outcomes(gateway: GatewayProcess, outcome: str) -> int:
    resp = raw_exchange(gateway.port, request("GET", "/metrics"))
    total = 0
    for line in resp.body.decode().splitlines():
        if line.startswith("tracseq_gateway_upstream_requests_total{") and (
            f'outcome="{outcome}"' in line
        ):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_gateway_answers_parse_back_with_h11(gateway: GatewayProcess) -> None:
    # the raw client itself: a response followed by nothing, per request
    resp = parse_response(request("GET", "/"), b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert (resp.status, resp.body, resp.trailing) == (200, b"ok", b"")
    assert re.fullmatch(rb"[0-9a-f]{32}", _get_rid(gateway))


def _get_rid(gateway: GatewayProcess) -> bytes:
    resp = raw_exchange(gateway.port, request("GET", "/ok"))
    rid = resp.header(b"x-request-id")
    assert rid is not None
    return rid
