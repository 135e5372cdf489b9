"""How an exchange with an upstream is counted: outlier ejection, the breaker, metrics
and the attempt's ``CLIENT`` span."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracseq_kit._http1 import UpstreamConnectError
from tracseq_kit._resend import Failure
from tracseq_kit._version import __version__
from tracseq_kit.gateway._request import Request

if TYPE_CHECKING:
    from tracseq_kit.gateway._app import _PoolState
    from tracseq_kit.gateway._metrics import GatewayStats
    from tracseq_kit.gateway._pool import Instance

__all__ = ["RETRY_STATUSES", "Outcomes", "end_span", "failure_of", "record", "release"]

RETRY_STATUSES = frozenset({502, 503, 504})
"""Statuses with which an instance says it cannot serve (counted as its failures)."""


class Outcomes:
    """Counts exchanges into the pool (ejection), the guard (breaker) and the stats."""

    def __init__(
        self, stats: GatewayStats, *, tracer_provider: trace.TracerProvider | None = None
    ) -> None:
        self.stats = stats
        self._tracer = trace.get_tracer(
            "tracseq_kit.gateway", __version__, tracer_provider=tracer_provider
        )

    async def succeeded(
        self,
        state: _PoolState,
        inst: Instance,
        permit: Any,
        status: int,
        span: trace.Span | None,
    ) -> None:
        """The response was relayed whole: count it by its status."""
        if status < 500:
            state.pool.record_success(inst)
            await record(state, permit, ok=True)
            end_span(span, status, None)
        elif status in RETRY_STATUSES:  # the instance itself says it cannot serve
            await self.failed(state, inst, permit, "status", span, status)
        else:
            # the instance answered, so it is no outlier, but the breaker counts 5xx
            inst.consecutive_failures = 0
            await record(state, permit, ok=False)
            self.count(state, inst, "5xx")
            end_span(span, status, None)

    async def failed(
        self,
        state: _PoolState,
        inst: Instance,
        permit: Any,
        failure: Failure | str,
        span: trace.Span | None,
        status: int | None = None,
    ) -> None:
        """The exchange failed (the instance's fault): eject, trip, count."""
        state.pool.record_failure(inst)
        await record(state, permit, ok=False)
        outcome = str(status) if status is not None else _OUTCOMES.get(failure, failure)
        self.count(state, inst, outcome)
        end_span(span, status, outcome)

    def count(self, state: _PoolState, inst: Instance, outcome: str) -> None:
        """One more ``outcome`` for the instance in the upstream-requests metric."""
        key = (state.pool.name, inst.address, outcome)
        failures = self.stats.upstream_failures
        failures[key] = failures.get(key, 0) + 1

    def client_span(self, req: Request, inst: Instance, target: bytes, resends: int) -> trace.Span:
        """One CLIENT span per upstream attempt (HTTP semantic conventions)."""
        attributes: dict[str, Any] = {
            "http.request.method": req.method,
            "server.address": inst.host,
            "server.port": inst.port,
            "url.full": f"http://{inst.address}{target.decode('latin-1')}",
            "network.protocol.version": "1.1",
        }
        if resends:
            attributes["http.request.resend_count"] = resends
        return self._tracer.start_span(req.method, kind=SpanKind.CLIENT, attributes=attributes)


_OUTCOMES: dict[str, str] = {
    "not_sent": "connect_error",
    "no_response": "connect_error",
    "bad_response": "protocol_error",
    "timeout": "timeout",
}


def failure_of(exc: BaseException) -> Failure:
    """The failure kind of an exception raised by an exchange."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, UpstreamConnectError):
        return "no_response" if exc.sent else "not_sent"
    return "bad_response"


def end_span(span: trace.Span | None, status: int | None, error: str | None) -> None:
    """End an attempt's span (if any) with its status and error type."""
    if span is None:
        return
    if status is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500 and error is None:
            error = str(status)
    if error is not None:
        span.set_attribute("error.type", error)
        span.set_status(Status(StatusCode.ERROR))
    span.end()


async def record(state: _PoolState, permit: Any, *, ok: bool) -> None:
    """Count the admitted call's outcome in the pool's guard."""
    if state.local is not None:
        state.local.record_nowait(permit, ok=ok)
    else:
        await state.guard.record(permit, ok=ok)


async def release(state: _PoolState, permit: Any) -> None:
    """End an admitted call without counting it: the client, not the upstream, failed."""
    if state.local is not None:
        state.local.release_nowait(permit)
    elif state.release is not None:
        await state.release(permit)
