"""The gateway's request path: a short pipeline of named steps.

    admit → read body → choose instance → attempt (under a lease) → relay

Each step returns what the next one needs or raises :class:`Refusal`, which becomes the
one problem+json response of the request (:meth:`Proxy.refuse`). What is re-sent, what
bounds what, and what is refused:

- **Re-sent**, at most once, within the retry budget, on another instance: only a request
  whose method is idempotent or that carries an ``Idempotency-Key``
  (:func:`tracseq_kit._resend.may_resend`), after a refused connection, a connection
  that closed before any response, an invalid response, or a 502/503/504 while another
  instance is available. A kept-alive connection the upstream closed just as it was
  reused is retried once on a fresh connection to the same instance, under the same
  rule. Timeouts are never re-sent; a streamed request body is never replayed.
- **Bounded**: the route's ``timeout`` bounds the upstream (its response head once the
  request is sent, and each pause in its body); ``client_timeout`` bounds the client
  (each read of its request body, each write of the response); ``max_body_bytes`` the
  request body; ``max_response_head_bytes`` the upstream's response head and trailers.
- **Refused**: 400 for a malformed or incomplete request body, an invalid
  ``Content-Length`` or a repeated single-valued header; 401/429/413/408 before any
  upstream is involved; 502 for an upstream that cannot be reached or answers with
  something that is not valid HTTP/1.1 (or whose body breaks off before the response
  started); 503 when no instance is available or the breaker is open (``Retry-After``);
  504 when the upstream is too slow. Trailers of an upstream response are dropped, never
  merged into its headers (RFC 9110 §6.5.1). A response that breaks off after its head
  was sent is cut short (the connection is closed), and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

from tracseq_kit._exceptions import CircuitOpenError
from tracseq_kit._http1 import (
    ConnectionPool,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamResponse,
    build_head,
)
from tracseq_kit._resend import Failure, may_resend
from tracseq_kit.asgi import Message, Receive, Scope, Send, send_problem
from tracseq_kit.gateway._asgi import (
    BodyTooLarge,
    ClientGone,
    ClientTimeout,
    client_body,
    until_disconnect,
    upstream_target,
)
from tracseq_kit.gateway._auth import AuthError
from tracseq_kit.gateway._forwarding import response_headers, upstream_headers
from tracseq_kit.gateway._headers import new_request_id_bytes, valid_request_id
from tracseq_kit.gateway._hooks import RateLimitVerdict
from tracseq_kit.gateway._outcome import (
    RETRY_STATUSES,
    Outcomes,
    end_span,
    failure_of,
    release,
)
from tracseq_kit.gateway._request import (
    CHALLENGE,
    CHUNKED,
    INVALID_TOKEN,
    NO_BODY,
    Body,
    Cut,
    Failed,
    Refusal,
    Request,
    client_refusal,
    repeated,
)
from tracseq_kit.identity import Identity
from tracseq_kit.resilience import RetryBudget

if TYPE_CHECKING:
    from tracseq_kit.gateway._app import _PoolState, _Snapshot
    from tracseq_kit.gateway._metrics import GatewayStats
    from tracseq_kit.gateway._pool import Instance

__all__ = ["Proxy"]

log = logging.getLogger("tracseq_kit.gateway")

_REPLAY_LIMIT = 64 * 1024
"""Bodies up to this size (with a Content-Length) of re-sendable requests are buffered."""
_SEND_UNBOUNDED = 64 * 1024
"""A complete response up to this size fits the server's write buffer: sent untimed."""


class Proxy:
    """The request path of one :class:`~tracseq_kit.gateway.Gateway`."""

    def __init__(
        self,
        connections: ConnectionPool,
        retry_budget: RetryBudget,
        stats: GatewayStats,
        *,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.connections = connections
        self.retry_budget = retry_budget
        self.outcomes = Outcomes(stats, tracer_provider=tracer_provider)

    # -- the pipeline ----------------------------------------------------------------
    async def serve(self, scope: Scope, receive: Receive, send: Send, snap: _Snapshot) -> None:
        """Serve one proxied request: request id, route, then the steps; count it."""
        start = time.perf_counter()
        # for lookups; every line is still forwarded, repeats are checked when admitted
        headers: dict[bytes, bytes] = dict(scope["headers"])
        rid = headers.get(b"x-request-id")
        if rid is None or not valid_request_id(rid):
            rid = new_request_id_bytes()
        path: str = scope["path"]
        route = snap.table.match(scope["method"], path, headers.get(b"host"), headers)
        if route is None:
            await send_problem(
                send,
                404,
                detail=f"no route for {path}",
                extensions={"request_id": rid.decode()},
                headers=[(b"x-request-id", rid)],
            )
            self.outcomes.stats.observe("-", 404, time.perf_counter() - start)
            return
        scope["route"] = route.prefix  # names the span when the gateway is traced
        status = 500
        try:
            status = await self.handle(Request(scope, receive, send, snap, route, headers, rid))
        except Exception:  # a bug, never a traceback to the client
            log.exception("gateway error on %s %s", scope["method"], path)
            with contextlib.suppress(Exception):
                await send_problem(
                    send,
                    500,
                    detail="gateway error",
                    extensions={"request_id": rid.decode()},
                    headers=[(b"x-request-id", rid)],
                )
        finally:
            self.outcomes.stats.observe(route.name, status, time.perf_counter() - start)

    async def handle(self, req: Request) -> int:
        """The steps of one routed request; return the status answered (for metrics)."""
        route, headers = req.route, req.headers
        try:
            # each step is awaited only when it has something to do (per-request cost)
            if route.auth or route.rate_limit is not None or len(headers) != req.n_headers:
                await self.admit(req)
            if b"content-length" in headers or b"transfer-encoding" in headers:
                return await self.forward(req, await self.read_body(req))
            return await self.forward(req, NO_BODY)
        except Refusal as refusal:
            await self.refuse(req, refusal)
            return refusal.status
        except Cut as cut:
            return cut.status

    async def refuse(self, req: Request, refusal: Refusal) -> None:
        """Send the one problem+json response of a refused request."""
        await send_problem(
            req.send,
            refusal.status,
            detail=refusal.detail,
            extensions={"request_id": req.rid.decode()},
            headers=[*req.extra, *refusal.headers],
        )

    async def admit(self, req: Request) -> None:
        """Refuse repeated single-valued headers; authenticate (routes with ``auth``);
        apply the route's rate limit."""
        route, snap = req.route, req.snap
        if len(req.headers) != req.n_headers:  # some name repeats: is it one that must not?
            twice = repeated(req.scope["headers"], snap.singletons)
            if twice:
                raise Refusal(400, f"the {twice.decode()} header may appear only once")
        if route.auth:
            identity = req.identity = await self._authenticate(req)
            missing = identity.missing(route.scopes_for(req.method))
            if missing:
                needed = " ".join(missing)
                challenge = f'Bearer realm="tracseq", error="insufficient_scope", scope="{needed}"'
                raise Refusal(
                    403,
                    f"{identity.subject!r} lacks the scope {needed} for {req.method} here",
                    [(b"www-authenticate", challenge.encode())],
                )
        if route.rate_limit is not None and snap.rate_limit is not None:
            verdict = await self._limit(req, route.rate_limit)
            if verdict is not None:
                req.extra.extend(verdict.headers)
                if not verdict.allowed:
                    retry_after = str(max(1, math.ceil(verdict.retry_after))).encode()
                    raise Refusal(
                        429,
                        f"rate limit {route.rate_limit!r} exceeded",
                        [(b"retry-after", retry_after)],
                    )

    async def _authenticate(self, req: Request) -> Identity:
        auth = req.snap.auth
        if auth is None:  # guarded by config validation
            raise Refusal(500, "route requires auth but none is configured")
        try:
            return await auth.authenticate(req.headers)
        except AuthError as exc:
            presented = b"authorization" in req.headers or auth.api_key_header in req.headers
            raise Refusal(401, str(exc), INVALID_TOKEN if presented else CHALLENGE) from None
        except Exception:  # fail closed: credentials that cannot be checked admit no one
            log.exception("authentication failed unexpectedly")
            raise Refusal(401, "the credentials could not be verified", CHALLENGE) from None

    async def _limit(self, req: Request, policy: str) -> RateLimitVerdict | None:
        """The rate limiter's verdict (None: it failed, and the request is admitted).

        Limits kept in memory are decided without awaiting (``check_nowait``).
        """
        snap = req.snap
        identity = req.identity
        client = req.scope.get("client")
        key = identity.subject if identity else (client[0] if client else "-")
        nowait = snap.rate_limit_nowait
        try:
            verdict = nowait(policy=policy, key=key) if nowait is not None else None
            if verdict is None and snap.rate_limit is not None:
                verdict = await snap.rate_limit.check(policy=policy, key=key)
        except Exception:
            log.exception("rate limiter failed; admitting the request")
            return None
        return verdict

    async def read_body(self, req: Request) -> Body:
        """Check the request's framing; buffer a small body that may be re-sent."""
        headers = req.headers
        length_raw = headers.get(b"content-length")
        chunked = b"transfer-encoding" in headers
        if length_raw is None and not chunked:
            return NO_BODY
        limit = req.snap.config.max_body_bytes
        stream = client_body(req.receive, limit, req.snap.config.client_timeout)
        if chunked:  # the server decoded the chunks; they are framed afresh upstream
            return Body(stream=stream, framing=CHUNKED, chunked=True)
        assert length_raw is not None
        if not length_raw.isdigit():
            raise Refusal(400, "invalid Content-Length")
        length = int(length_raw)
        if length > limit:
            raise Refusal(413, f"request body exceeds {limit} bytes")
        framing = ((b"content-length", length_raw),)
        if length == 0:
            return Body(framing=framing)
        if length > _REPLAY_LIMIT or not self._resendable(req):
            return Body(stream=stream, framing=framing)
        try:
            data = b"".join([chunk async for chunk in stream])
        except (BodyTooLarge, ClientGone, ClientTimeout) as exc:
            raise client_refusal(exc, limit) from None
        return Body(data=data, framing=framing)

    async def forward(self, req: Request, body: Body) -> int:
        """Choose an instance and attempt; once more elsewhere when the rule allows."""
        state = req.snap.pools[req.route.pool.name]
        pool = state.pool
        out, traceparent = upstream_headers(req)
        if body.framing:
            out.extend(body.framing)
        target = upstream_target(req.scope, req.route)
        self.retry_budget.record_request()
        tried: Instance | None = None
        failed: Failed | None = None
        for resends in (0, 1):
            inst = pool.pick(exclude=tried)
            if inst is None or inst is tried:
                break
            if resends:
                self.outcomes.stats.retries[pool.name] = (
                    self.outcomes.stats.retries.get(pool.name, 0) + 1
                )
            with pool.lease(inst):
                try:
                    return await self.attempt(
                        req, state, inst, target, out, traceparent, body, resends
                    )
                except Failed as exc:
                    failed = exc
            if not failed.resend:
                break
            tried = inst
        if failed is None:
            raise Refusal(503, "no instance available")
        raise Refusal(failed.status, failed.detail)

    async def attempt(
        self,
        req: Request,
        state: _PoolState,
        inst: Instance,
        target: bytes,
        out: list[tuple[bytes, bytes]],
        traceparent: bytes,
        body: Body,
        resends: int,
    ) -> int:
        """One exchange with ``inst`` under the pool's breaker, then the relay."""
        local = state.local
        try:
            permit = local.admit_nowait() if local is not None else await state.guard.admit()
        except CircuitOpenError as exc:
            retry_after = str(max(1, int(exc.remaining + 0.999))).encode()
            raise Refusal(
                503,
                f"upstream {state.pool.name!r} is failing; circuit open",
                [(b"retry-after", retry_after)],
            ) from None
        span = self.outcomes.client_span(req, inst, target, resends) if req.traced else None
        if span is not None:
            ctx = span.get_span_context()
            traceparent = b"00-%032x-%016x-%02x" % (ctx.trace_id, ctx.span_id, ctx.trace_flags)
        head = build_head(
            req.method.encode(),
            target,
            [(b"host", inst.host_header), *out, (b"traceparent", traceparent)],
        )
        payload = body.data if body.stream is None else body.stream
        try:
            try:
                resp = await self.connections.request(
                    inst.host,
                    inst.port,
                    head,
                    payload,
                    chunked=body.chunked,
                    head_only=req.method == "HEAD",
                    connect_timeout=state.cfg.connect_timeout,
                    head_timeout=req.route.timeout,
                )
            except UpstreamConnectError as exc:
                resp = await self._fresh(req, state, inst, head, body, exc)
            if resp.status >= 600:
                resp.release()
                raise UpstreamProtocolError(f"invalid status code {resp.status}")
        except (UpstreamError, TimeoutError) as exc:
            failure = failure_of(exc)
            await self.outcomes.failed(state, inst, permit, failure, span)
            raise self._decide(req, state, inst, body, failure, exc) from None
        except (BodyTooLarge, ClientGone, ClientTimeout) as exc:
            await release(state, permit)
            end_span(span, None, "client")
            raise client_refusal(exc, req.snap.config.max_body_bytes) from None
        if resp.status in RETRY_STATUSES and len(state.pool.instances) > 1:
            failed = self._decide(req, state, inst, body, "status", resp.status)
            if failed.resend:  # another instance may do better: this answer is dropped
                resp.release()
                await self.outcomes.failed(state, inst, permit, "status", span, resp.status)
                raise failed
        return await self.relay(req, state, inst, resp, permit, span)

    async def relay(
        self,
        req: Request,
        state: _PoolState,
        inst: Instance,
        resp: UpstreamResponse,
        permit: Any,
        span: trace.Span | None,
    ) -> int:
        """Send the upstream's response to the client, then count the outcome."""
        status = resp.status
        headers = response_headers(resp.headers, req.extra)
        send = req.send
        if not resp.complete:
            return await self._relay_stream(req, state, inst, resp, permit, span, headers)
        try:
            data = resp.read_buffered()
        except UpstreamError as exc:  # the head was fine, the body was not
            await self.outcomes.failed(state, inst, permit, "bad_response", span)
            raise self._decide(req, state, inst, NO_BODY, "bad_response", exc) from None
        start: Message = {"type": "http.response.start", "status": status, "headers": headers}
        end: Message = {"type": "http.response.body", "body": data}
        try:
            if len(data) <= _SEND_UNBOUNDED:
                await send(start)
                await send(end)
            else:
                async with asyncio.timeout(req.snap.config.client_timeout):
                    await send(start)
                    await send(end)
        except (TimeoutError, OSError):
            await release(state, permit)
            end_span(span, status, "client")
            raise Cut(status) from None
        local = state.local
        if status < 500 and local is not None and span is None:  # the common case, inline
            state.pool.record_success(inst)
            local.record_nowait(permit, ok=True)
            return status
        await self.outcomes.succeeded(state, inst, permit, status, span)
        return status

    async def _relay_stream(
        self,
        req: Request,
        state: _PoolState,
        inst: Instance,
        resp: UpstreamResponse,
        permit: Any,
        span: trace.Span | None,
        headers: list[tuple[bytes, bytes]],
    ) -> int:
        status = resp.status
        await req.send({"type": "http.response.start", "status": status, "headers": headers})
        blame = await self._stream(req, resp)
        if blame is None:
            await req.send({"type": "http.response.body", "body": b""})
            await self.outcomes.succeeded(state, inst, permit, status, span)
            return status
        if blame == "client":
            await release(state, permit)
            end_span(span, status, "client")
            raise Cut(status)
        await self.outcomes.failed(state, inst, permit, blame, span)
        raise Cut(502 if blame == "bad_response" else 504)

    async def _stream(self, req: Request, resp: UpstreamResponse) -> Failure | str | None:
        """Stream the body; None when whole, else who failed: the client or the upstream."""
        loop = asyncio.get_running_loop()
        upstream_timeout = req.route.timeout
        client_timeout = req.snap.config.client_timeout
        send = req.send
        # a client that goes away must not keep the upstream transfer running
        watcher = loop.create_task(until_disconnect(req.receive))
        watcher.add_done_callback(lambda _: resp.release())
        chunks = resp.iter_body()
        waiting_for = "upstream"
        try:
            async with asyncio.timeout(None) as deadline:
                while True:
                    waiting_for = "upstream"
                    deadline.reschedule(loop.time() + upstream_timeout)
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        return None
                    waiting_for = "client"
                    deadline.reschedule(loop.time() + client_timeout)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except TimeoutError:
            if waiting_for == "client":
                log.warning(
                    "client did not take the response within %ss (client_timeout); cut",
                    client_timeout,
                )
                return "client"
            log.warning("upstream paused longer than %ss (route timeout); cut", upstream_timeout)
            return "timeout"
        except UpstreamError as exc:
            if watcher.done():  # released because the client went away
                return "client"
            log.warning("upstream body failed mid-stream: %s", exc)
            return "bad_response"
        except OSError:
            return "client"
        finally:
            watcher.cancel()
            await chunks.aclose()
            resp.release()

    # -- decisions and outcomes -------------------------------------------------------
    def _resendable(self, req: Request) -> bool:
        """Could this request ever be re-sent (before any failure is known)?"""
        return req.route.retry and may_resend(
            req.method, idempotency_key=req.keyed, failure="not_sent", budget=True
        )

    def _decide(
        self,
        req: Request,
        state: _PoolState,
        inst: Instance,
        body: Body,
        failure: Failure,
        cause: BaseException | int,
    ) -> Failed:
        """The failed attempt's problem, and whether to re-send it elsewhere.

        ``cause`` is the upstream's status for a ``status`` failure, else the error.
        """
        name = state.pool.name
        if failure == "timeout":
            status, detail = 504, f"upstream {name!r} did not answer within {req.route.timeout}s"
        elif isinstance(cause, int):
            status, detail = cause, f"upstream answered {cause}"
        else:
            status, detail = 502, f"upstream {name!r} failed: {cause}"
        resend = (
            req.route.retry
            and may_resend(
                req.method,
                idempotency_key=req.keyed,
                failure=failure,
                budget=True,
                replayable=body.replayable,
            )
            and state.pool.pick(exclude=inst) not in (None, inst)
            and self.retry_budget.try_spend()
        )
        return Failed(failure, status, detail, resend=resend)

    async def _fresh(
        self,
        req: Request,
        state: _PoolState,
        inst: Instance,
        head: bytes,
        body: Body,
        exc: UpstreamConnectError,
    ) -> UpstreamResponse:
        """A kept-alive connection the upstream closed as it was reused: once more,
        on a fresh connection, if the request may be re-sent at all; else re-raise."""
        if not (
            exc.reused
            and may_resend(
                req.method,
                idempotency_key=req.keyed,
                failure="no_response" if exc.sent else "not_sent",
                budget=True,
                replayable=body.replayable,
            )
        ):
            raise exc
        return await self.connections.request(
            inst.host,
            inst.port,
            head,
            body.data if body.stream is None else body.stream,
            chunked=body.chunked,
            head_only=req.method == "HEAD",
            fresh=True,
            connect_timeout=state.cfg.connect_timeout,
            head_timeout=req.route.timeout,
        )
