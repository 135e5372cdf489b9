"""A pooled HTTP/1.1 client on asyncio protocols and httptools' response parser.

Why not aiohttp or httpx: the gateway's hot path is one upstream round trip per
request, and the transport benchmark (``bench/gateway_transports.py``, results in
``docs/benchmarks.md``) measured this client well ahead of aiohttp's ``ClientSession``
and far ahead of httpx at the same concurrency. Parsing is not hand-written: httptools
(llhttp, the parser of Node.js) does it; this module only keeps connections, frames the
request and hands body chunks over with back-pressure.

What fails and how:

- connect errors and resets raise :class:`UpstreamConnectError` (nothing was sent, or the
  upstream closed before sending a status line); ``reused`` tells whether the connection
  came from the pool, in which case the request may be retried on a fresh connection;
- a malformed response raises :class:`UpstreamProtocolError`;
- timeouts are the caller's: wrap calls in :func:`asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import httptools

__all__ = [
    "ConnectionPool",
    "UpstreamConnectError",
    "UpstreamProtocolError",
    "UpstreamResponse",
    "build_head",
]

_HIGH_WATER = 256 * 1024
_SWEEP_EVERY = 0.05


class UpstreamConnectError(ConnectionError):
    """The upstream could not be reached, or closed before answering.

    ``reused`` is true when the failing connection came from the idle pool (the
    server may have closed it while idle); ``sent`` is true when request bytes may
    have reached the server.
    """

    def __init__(self, message: str, *, reused: bool = False, sent: bool = False) -> None:
        super().__init__(message)
        self.reused = reused
        self.sent = sent


class UpstreamProtocolError(ConnectionError):
    """The upstream sent bytes that are not a valid HTTP/1.1 response."""


class _Conn(asyncio.Protocol):
    """One keep-alive connection; serves one request at a time."""

    __slots__ = (
        "_body_waiter",
        "_chunks",
        "_done",
        "_drain_waiter",
        "_error",
        "_head_waiter",
        "_headers",
        "_interim",
        "_keep_alive",
        "_parser",
        "_paused_reading",
        "_paused_writing",
        "_pending",
        "_status",
        "_until_close",
        "closed",
        "key",
        "transport",
        "used",
    )

    def __init__(self, key: tuple[str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.used = False
        self._parser = httptools.HttpResponseParser(self)
        self._paused_writing = False
        self._paused_reading = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self._headers: list[tuple[bytes, bytes]] = []
        self._status = 0
        self._until_close = True  # until a framing header says otherwise
        self._interim = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._pending = 0
        self._done = False
        self._keep_alive = True
        self._error: BaseException | None = None
        self._head_waiter: asyncio.Future[None] | None = None
        self._body_waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, hence the cast.
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("upstream switched protocols; not supported"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"invalid response from upstream: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._done:
            if self._status and self._until_close:
                # a body delimited by the connection's end is complete now
                self._done = True
                self._keep_alive = False
                self._wake_body()
            elif self._status:
                self._fail(UpstreamProtocolError("upstream closed the connection mid-response"))
            else:
                self._fail(
                    UpstreamConnectError(
                        "upstream closed the connection before responding",
                        reused=self.used,
                        sent=True,
                    )
                )
        self._wake_drain(exc)

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        self._wake_drain(None)

    # -- httptools callbacks ----------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or name == b"transfer-encoding":
            self._until_close = False
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:  # interim response (100 Continue, 103 Early Hints): skip
            self._interim = True
            self._headers = []
            self._until_close = True
            return
        self._status = status
        self._keep_alive = self._parser.should_keep_alive()
        self._until_close = (
            self._until_close and self._status >= 200 and self._status not in (204, 304)
        )
        waiter = self._head_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._pending += len(body)
        if self._pending > _HIGH_WATER and not self._paused_reading and self.transport:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake_body()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._done = True
        self._wake_body()

    # -- helpers ------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        for waiter in (self._head_waiter, self._body_waiter):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        if self.transport is not None:
            self.transport.close()

    def on_timeout(self) -> None:
        if self._status == 0:
            self._fail(TimeoutError("upstream did not answer in time"))

    def _wake_body(self) -> None:
        waiter = self._body_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_drain(self, exc: BaseException | None) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._drain_waiter = None

    async def drain(self) -> None:
        if self.closed:
            raise self._error or UpstreamConnectError("upstream connection closed", sent=True)
        if self._paused_writing:
            self._drain_waiter = asyncio.get_running_loop().create_future()
            await self._drain_waiter
            if self.closed:
                raise self._error or UpstreamConnectError("upstream connection closed", sent=True)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass(slots=True)
class UpstreamResponse:
    """The head of an upstream response; the body is read with :meth:`iter_body`.

    ``complete`` is true when the whole body had already arrived with the head, in
    which case :meth:`read_buffered` returns it without waiting.
    Always call :meth:`release` (or exhaust :meth:`iter_body`) so the connection
    goes back to the pool or gets closed.
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    _conn: _Conn
    _pool: ConnectionPool
    _released: bool = field(default=False)

    @property
    def complete(self) -> bool:
        """Whether the full body has already been received."""
        return self._conn._done or self._conn._error is not None

    def read_buffered(self) -> bytes:
        """Return (and consume) the body bytes received so far."""
        conn = self._conn
        if conn._error is not None:
            raise conn._error
        data = b"".join(conn._chunks)
        conn._chunks.clear()
        conn._pending = 0
        if conn._done:
            self.release()
        return data

    async def iter_body(self) -> AsyncIterator[bytes]:
        """Yield body chunks as they arrive; raises the connection's error, if any."""
        conn = self._conn
        loop = asyncio.get_running_loop()
        try:
            while True:
                if conn._chunks:
                    chunk = b"".join(conn._chunks)
                    conn._chunks.clear()
                    conn._pending = 0
                    if conn._paused_reading and conn.transport is not None:
                        conn._paused_reading = False
                        conn.transport.resume_reading()
                    yield chunk
                    continue
                if conn._error is not None:
                    raise conn._error
                if conn._done:
                    return
                conn._body_waiter = loop.create_future()
                await conn._body_waiter
                conn._body_waiter = None
        finally:
            self.release()

    def release(self) -> None:
        """Return the connection to the pool when reusable, otherwise close it."""
        if self._released:
            return
        self._released = True
        self._pool._release(self._conn)


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to any number of ``(host, port)`` upstreams.

    ``max_idle`` bounds the idle connections kept per upstream; ``connect_timeout``
    bounds TCP connection setup (seconds).
    """

    def __init__(self, *, max_idle: int = 256, connect_timeout: float = 2.0) -> None:
        self._idle: dict[tuple[str, int], collections.deque[_Conn]] = {}
        self._max_idle = max_idle
        self._connect_timeout = connect_timeout
        self._closed = False
        # connections waiting for a response head, with their deadlines; one sweeping
        # timer checks them (a timer per request costs ~1.6 us, a set entry ~0.1 us)
        self._waiting: dict[_Conn, float] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None

    def _sweep_deadlines(self) -> None:
        self._sweep = None
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn, deadline in list(self._waiting.items()):
            if deadline <= now:
                del self._waiting[conn]
                conn.on_timeout()
        if self._waiting:
            self._sweep = loop.call_later(_SWEEP_EVERY, self._sweep_deadlines)

    async def _connect(self, key: tuple[str, int], connect_timeout: float | None = None) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_timeout or self._connect_timeout):
                _, conn = await loop.create_connection(lambda: _Conn(key), key[0], key[1])
        except TimeoutError:
            raise UpstreamConnectError(f"connect to {key[0]}:{key[1]} timed out") from None
        except OSError as exc:
            raise UpstreamConnectError(f"cannot connect to {key[0]}:{key[1]}: {exc}") from exc
        return conn

    async def _acquire(self, key: tuple[str, int], connect_timeout: float | None) -> _Conn:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return await self._connect(key, connect_timeout)

    def _release(self, conn: _Conn) -> None:
        if (
            self._closed
            or conn.closed
            or not conn._done
            or conn._error is not None
            or not conn._keep_alive
        ):
            conn.close()
            return
        conn._reset()
        conn.used = True
        idle = self._idle.setdefault(conn.key, collections.deque())
        if len(idle) >= self._max_idle:
            conn.close()
            return
        idle.append(conn)

    async def request(
        self,
        host: str,
        port: int,
        head: bytes,
        body: bytes | AsyncIterator[bytes] | None = None,
        *,
        chunked: bool = False,
        head_only: bool = False,
        fresh: bool = False,
        connect_timeout: float | None = None,
        head_timeout: float | None = None,
    ) -> UpstreamResponse:
        """Send one request and return once the response head has arrived.

        ``head`` is the complete request head (request line and headers, ending with
        a blank line) as built by :func:`build_head`. ``body`` is sent as is, or, when
        ``chunked`` is true, framed with chunked transfer coding. ``head_only`` marks
        a HEAD request (the response has no body). ``fresh`` skips the idle pool.
        ``connect_timeout`` overrides the pool's (seconds). ``head_timeout`` bounds the
        time from sending the request to receiving the response head; when it passes,
        the connection is closed and :class:`TimeoutError` raised (checked every
        0.05 s, so the wait may exceed it by that much).
        """
        key = (host, port)
        if fresh:
            conn = await self._connect(key, connect_timeout)
        else:
            conn = await self._acquire(key, connect_timeout)
        loop = asyncio.get_running_loop()
        conn._head_waiter = loop.create_future()
        transport = conn.transport
        assert transport is not None
        if head_timeout:
            self._waiting[conn] = loop.time() + head_timeout
            if self._sweep is None or self._sweep_loop is not loop:
                self._sweep_loop = loop
                self._sweep = loop.call_later(_SWEEP_EVERY, self._sweep_deadlines)
        try:
            if body is None or isinstance(body, bytes):
                transport.write(head + body if body else head)
            else:
                transport.write(head)
                async for chunk in body:
                    if not chunk:
                        continue
                    if chunked:
                        transport.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                    else:
                        transport.write(chunk)
                    await conn.drain()
                if chunked:
                    transport.write(b"0\r\n\r\n")
            if conn._status == 0 and conn._error is None:
                await conn._head_waiter
        except BaseException:
            conn.close()
            raise
        finally:
            self._waiting.pop(conn, None)
        if conn._error is not None and conn._status == 0:
            conn.close()
            raise conn._error
        if head_only:
            conn._done = True
            conn._keep_alive = False
        return UpstreamResponse(conn._status, conn._headers, conn, self)

    async def aclose(self) -> None:
        """Close every idle connection; later releases close their connection."""
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for idle in self._idle.values():
            while idle:
                idle.pop().close()
        self._idle.clear()


def build_head(
    method: bytes,
    target: bytes,
    headers: Iterable[tuple[bytes, bytes]],
) -> bytes:
    """Encode a request line and headers into an HTTP/1.1 request head."""
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)
