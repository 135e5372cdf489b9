"""An httpx transport on the gateway's pooled HTTP/1.1 client (httptools parsing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from tracseq_kit._exceptions import ConfigurationError, MissingDependencyError

if TYPE_CHECKING:
    from tracseq_kit._http1 import ConnectionPool, UpstreamResponse

__all__ = ["FastTransport"]


class FastTransport(httpx.AsyncBaseTransport):
    """A faster transport for :class:`~tracseq_kit.client.AsyncTracSeqClient`.

    ``AsyncTracSeqClient(transport=FastTransport())``: the keep-alive HTTP/1.1
    connection pool the gateway uses upstream, parsed by httptools, behind httpx's
    transport interface, several times the throughput of httpx's default transport (see
    the benchmarks). Plain ``http://`` only (a gateway or service inside the lab
    network); an ``https`` URL raises :class:`~tracseq_kit.ConfigurationError`, use
    httpx's default transport there. ``max_idle`` bounds idle connections per host.

    Timeouts: httpx's ``connect`` timeout bounds connecting and ``read`` bounds the wait
    for the response head. When a pooled connection turns out to have been closed by the
    server, the request is sent once more on a fresh connection only if it may be: it
    never left, or its method is idempotent, or it carries an ``Idempotency-Key``.
    Errors are httpx's (``ConnectError``, ``ReadTimeout``,
    ``RemoteProtocolError``), so the client maps and retries them as usual. Needs the
    ``gateway`` extra (httptools): :class:`~tracseq_kit.MissingDependencyError` otherwise.
    """

    def __init__(self, *, max_idle: int = 64) -> None:
        try:
            from tracseq_kit._http1 import ConnectionPool
        except ImportError:
            raise MissingDependencyError(
                "httptools", extra="gateway", purpose="FastTransport"
            ) from None
        self._pool: ConnectionPool = ConnectionPool(max_idle=max_idle)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        from tracseq_kit._http1 import (
            UpstreamConnectError,
            UpstreamProtocolError,
            build_head,
        )

        url = request.url
        if url.scheme != "http":
            raise ConfigurationError(f"FastTransport speaks plain http only, not {url.scheme!r}")
        port = url.port or 80
        body = await _body(request)
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"transfer-encoding"]
        if body is not None and "content-length" not in request.headers:
            headers.append((b"content-length", str(len(body)).encode()))
        head = build_head(request.method.encode(), url.raw_path, headers)
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        for attempt in (1, 2):
            try:
                upstream = await self._pool.request(
                    url.host,
                    port,
                    head,
                    body,
                    head_only=request.method == "HEAD",
                    fresh=attempt == 2,
                    connect_timeout=timeouts.get("connect"),
                    head_timeout=timeouts.get("read"),
                )
                break
            except UpstreamConnectError as exc:
                if exc.reused and attempt == 1 and _may_resend(request, exc):
                    continue  # the server closed the idle connection: once more, fresh
                raise httpx.ConnectError(str(exc), request=request) from exc
            except TimeoutError as exc:
                raise httpx.ReadTimeout("no response head in time", request=request) from exc
            except UpstreamProtocolError as exc:
                raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        return httpx.Response(
            upstream.status,
            headers=upstream.headers,
            stream=_Stream(upstream, request),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        """Close the idle connections."""
        await self._pool.aclose()


def _may_resend(request: httpx.Request, exc: Exception) -> bool:
    from tracseq_kit._resend import may_resend

    return may_resend(
        request.method,
        idempotency_key="idempotency-key" in request.headers,
        failure="no_response" if getattr(exc, "sent", True) else "not_sent",
        budget=True,
    )


async def _body(request: httpx.Request) -> bytes | None:
    """The request body, read once so a retry on a fresh connection can resend it."""
    chunks = [chunk async for chunk in request.stream]  # type: ignore[union-attr]
    return b"".join(chunks) or None


class _Stream(httpx.AsyncByteStream):
    def __init__(self, upstream: UpstreamResponse, request: httpx.Request) -> None:
        self._upstream = upstream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        from tracseq_kit._http1 import UpstreamConnectError, UpstreamProtocolError

        try:
            if self._upstream.complete:
                data = self._upstream.read_buffered()
                if data:
                    yield data
                return
            async for chunk in self._upstream.iter_body():
                yield chunk
        except (UpstreamProtocolError, UpstreamConnectError) as exc:
            raise httpx.RemoteProtocolError(str(exc), request=self._request) from exc

    async def aclose(self) -> None:
        self._upstream.release()
