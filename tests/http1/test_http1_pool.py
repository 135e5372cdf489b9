"""The pooled HTTP/1.1 client against small raw asyncio servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tracseq_kit._http1 import (
    ConnectionPool,
    UpstreamConnectError,
    UpstreamProtocolError,
    build_head,
)

pytestmark = pytest.mark.anyio

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _server(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


HEAD = build_head(b"GET", b"/", [(b"host", b"t")])


async def test_connections_are_reused_and_counted() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                await _read_head(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server, port = await _server(handler)
    pool = ConnectionPool()
    async with server:
        for _ in range(5):
            r = await pool.request("127.0.0.1", port, HEAD)
            assert (r.status, r.read_buffered()) == (200, b"ok")
        await pool.aclose()
    assert connections == 1


async def test_idle_connection_closed_by_server_reports_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        # keep-alive is implied, but the server closes right after answering
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server, port = await _server(handler)
    pool = ConnectionPool()
    async with server:
        r = await pool.request("127.0.0.1", port, HEAD)
        r.read_buffered()
        idle = next(iter(pool._idle.values()))[0]
        for _ in range(1000):  # wait for the close to arrive (bounded)
            if idle.closed:
                break
            await asyncio.sleep(0)
        # the dead idle connection is noticed and skipped, or reported as reused
        try:
            r = await pool.request("127.0.0.1", port, HEAD)
            assert r.status == 200
        except UpstreamConnectError as exc:
            assert exc.reused
        r = await pool.request("127.0.0.1", port, HEAD, fresh=True)
        assert r.read_buffered() == b"ok"
        await pool.aclose()


async def test_chunked_response_streams_and_request_body_is_chunked() -> None:
    received = bytearray()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await _read_head(reader)
        assert b"transfer-encoding: chunked" in head.lower()
        while True:
            size = int((await reader.readline()).strip(), 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            received.extend(data[:-2])
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"hello ", b"streamed ", b"world"):
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def body() -> AsyncIterator[bytes]:
        for part in (b"abc", b"", b"defg"):
            yield part

    server, port = await _server(handler)
    pool = ConnectionPool()
    async with server:
        head = build_head(b"POST", b"/", [(b"host", b"t"), (b"transfer-encoding", b"chunked")])
        r = await pool.request("127.0.0.1", port, head, body(), chunked=True)
        chunks = [c async for c in r.iter_body()]
        await pool.aclose()
    assert b"".join(chunks) == b"hello streamed world"
    assert bytes(received) == b"abcdefg"


async def test_garbage_is_a_protocol_error_and_refused_is_a_connect_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    server, port = await _server(handler)
    pool = ConnectionPool()
    async with server:
        with pytest.raises(UpstreamProtocolError):
            await pool.request("127.0.0.1", port, HEAD)
    with pytest.raises(UpstreamConnectError) as info:
        await pool.request("127.0.0.1", port, HEAD)
    assert not info.value.reused
    await pool.aclose()


async def test_head_timeout_closes_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        await reader.read()  # never answers

    server, port = await _server(handler)
    pool = ConnectionPool()
    async with server:
        with pytest.raises(TimeoutError):
            await pool.request("127.0.0.1", port, HEAD, head_timeout=0.05)
        await pool.aclose()


async def test_body_delimited_by_connection_close() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        for part in (b"old ", b"style ", b"body"):
            writer.write(part)
            await writer.drain()
        writer.close()

    server, port = await _server(handler)
    pool = ConnectionPool()
    async with server:
        r = await pool.request("127.0.0.1", port, HEAD)
        body = b"".join([c async for c in r.iter_body()])
        await pool.aclose()
    assert body == b"old style body"


async def test_interim_responses_are_skipped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone")
        await writer.drain()

    server, port = await _server(handler)
    pool = ConnectionPool()
    async with server:
        r = await pool.request("127.0.0.1", port, HEAD)
        assert r.status == 201
        assert (b"link", b"</a.css>; rel=preload") not in r.headers
        assert b"".join([c async for c in r.iter_body()]) == b"done"
        await pool.aclose()


async def _settle(condition: Callable[[], bool]) -> None:
    for _ in range(2000):  # bounded wait for loopback I/O, never for time to pass
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


async def test_bytes_on_an_idle_connection_close_it_and_reach_no_one() -> None:
    writers: list[asyncio.StreamWriter] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while True:
            try:
                await _read_head(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
            await writer.drain()

    server, port = await _server(handler)
    pool = ConnectionPool()
    async with server:
        r = await pool.request("127.0.0.1", port, HEAD)
        assert r.read_buffered() == b"first"
        idle = pool._idle[("127.0.0.1", port)][0]
        # the upstream writes a whole extra response on the idle connection
        writers[0].write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
        await writers[0].drain()
        await _settle(lambda: idle.closed)
        r = await pool.request("127.0.0.1", port, HEAD)
        assert (r.status, r.read_buffered()) == (200, b"first")
        await pool.aclose()
    assert len(writers) == 2  # the poisoned connection was never used again


async def test_two_responses_in_one_packet_yield_the_first_only() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
            b"HTTP/1.1 404 Not Found\r\nX-Evil: 1\r\nContent-Length: 6\r\n\r\nsecret"
        )
        await writer.drain()
        await reader.read()

    server, port = await _server(handler)
    pool = ConnectionPool()
    async with server:
        r = await pool.request("127.0.0.1", port, HEAD)
        assert r.status == 200
        assert (b"x-evil", b"1") not in r.headers
        assert b"".join([c async for c in r.iter_body()]) == b"ok"
        assert not pool._idle.get(("127.0.0.1", port))  # closed, not pooled
        await pool.aclose()


async def test_trailers_are_kept_apart_from_headers() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Set-Cookie\r\n\r\n"
            b"2\r\nok\r\n0\r\nSet-Cookie: session=stolen\r\n\r\n"
        )
        await writer.drain()
        await reader.read()

    server, port = await _server(handler)
    pool = ConnectionPool()
    async with server:
        r = await pool.request("127.0.0.1", port, HEAD)
        assert b"".join([c async for c in r.iter_body()]) == b"ok"
        assert not any(name == b"set-cookie" for name, _ in r.headers)
        assert r.trailers == [(b"set-cookie", b"session=stolen")]
        await pool.aclose()


async def test_a_broken_body_after_a_good_head_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nxx\r\n")
        await writer.drain()
        await reader.read()

    server, port = await _server(handler)
    pool = ConnectionPool()
    async with server:
        r = await pool.request("127.0.0.1", port, HEAD)
        assert r.status == 200 and r.complete
        with pytest.raises(UpstreamProtocolError):
            r.read_buffered()
        await pool.aclose()


async def test_a_response_head_over_the_limit_is_refused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(300):  # about 300 KB of header fields, never finishing
            writer.write(b"X-Filler: " + b"a" * 1000 + b"\r\n")
            await writer.drain()
        await reader.read()

    server, port = await _server(handler)
    pool = ConnectionPool(max_head_bytes=64 * 1024)
    async with server:
        with pytest.raises(UpstreamProtocolError, match="max_head_bytes"):
            await pool.request("127.0.0.1", port, HEAD)
        await pool.aclose()


async def test_a_head_response_body_is_never_delivered_and_head_keeps_alive() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                await _read_head(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n")
            await writer.drain()

    server, port = await _server(handler)
    pool = ConnectionPool()
    head = build_head(b"HEAD", b"/", [(b"host", b"t")])
    async with server:
        for _ in range(3):
            r = await pool.request("127.0.0.1", port, head, head_only=True)
            assert (r.status, r.read_buffered()) == (200, b"")
        await pool.aclose()
    assert connections == 1


async def test_a_connection_idle_too_long_is_not_reused() -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                await _read_head(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    server, port = await _server(handler)
    pool = ConnectionPool(max_idle_time=0.0)
    async with server:
        for _ in range(2):
            r = await pool.request("127.0.0.1", port, HEAD)
            r.read_buffered()
        await pool.aclose()
    assert connections == 2


async def test_a_request_written_then_unanswered_is_reported_as_sent() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.close()  # received the request, then went away without answering

    server, port = await _server(handler)
    pool = ConnectionPool()
    async with server:
        with pytest.raises(UpstreamConnectError) as info:
            await pool.request("127.0.0.1", port, HEAD)
        await pool.aclose()
    assert info.value.sent and not info.value.reused
