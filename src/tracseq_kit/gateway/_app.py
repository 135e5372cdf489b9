"""The gateway as a pure ASGI application: configuration, lifecycle, internal endpoints.

Per request the gateway sets the request id and matches a route (longest prefix), then
hands the request to its :class:`~tracseq_kit.gateway._proxy.Proxy`: admit (auth, rate
limit) → read body → choose instance → attempt (under a lease and the pool's breaker) →
relay. What is re-sent, what each timeout bounds and what is refused is documented
there. Every error is answered as problem+json; a traceback never reaches the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit._http1 import ConnectionPool
from tracseq_kit.asgi import Receive, Scope, Send, send_json, send_probe
from tracseq_kit.gateway._asgi import REPLACED
from tracseq_kit.gateway._auth import Authenticator
from tracseq_kit.gateway._config import GatewayConfig, PoolConfig, load_config
from tracseq_kit.gateway._discovery import RedisRegistry
from tracseq_kit.gateway._headers import HOP_BY_HOP
from tracseq_kit.gateway._health import check_pools
from tracseq_kit.gateway._hooks import (
    GuardFactory,
    NoGuard,
    PoolGuard,
    RateLimitHook,
    RateLimitVerdict,
)
from tracseq_kit.gateway._metrics import GatewayStats, register_stats
from tracseq_kit.gateway._pool import UpstreamPool
from tracseq_kit.gateway._proxy import Proxy
from tracseq_kit.gateway._ratelimit import LimiterHook
from tracseq_kit.gateway._routing import RoutingTable
from tracseq_kit.identity import AssertionSigner
from tracseq_kit.ratelimit import MemoryStore, RedisStore
from tracseq_kit.resilience import CircuitBreaker, RetryBudget
from tracseq_kit.telemetry import metrics_registry

__all__ = ["Gateway"]

log = logging.getLogger("tracseq_kit.gateway")

# Headers a request may carry once only: a second line could make the gateway and the
# upstream read different values (which host, which credentials, how long the body is).
_SINGLETONS = frozenset(
    {b"host", b"authorization", b"content-length", b"idempotency-key", b"transfer-encoding"}
)


@dataclass
class _PoolState:
    name: str
    cfg: PoolConfig
    pool: UpstreamPool
    guard: PoolGuard
    discovered: tuple[str, ...] = ()
    release: Callable[[Any], Awaitable[None]] | None = None
    """The guard's ``release`` (end a call without counting it), when it has one."""
    local: CircuitBreaker | NoGuard | None = None
    """The guard again when its state is in this process: called without awaiting."""
    audience: str = ""
    """Who identity assertions sent to this pool are for."""

    def __post_init__(self) -> None:
        self.audience = self.cfg.audience or self.name
        guard = self.guard
        self.release = getattr(guard, "release", None)
        if isinstance(guard, NoGuard) or (isinstance(guard, CircuitBreaker) and guard.local):
            self.local = guard


@dataclass(frozen=True)
class _Snapshot:
    """Everything one request needs, swapped atomically on reload."""

    config: GatewayConfig
    table: RoutingTable
    pools: dict[str, _PoolState]
    auth: Authenticator | None
    drop: frozenset[bytes]
    """Request headers never forwarded: hop-by-hop, replaced ones, the API key."""
    singletons: frozenset[bytes]
    """Request headers that may appear once only (a repeat is a 400)."""
    rate_limit: RateLimitHook | None = None
    rate_limit_nowait: Callable[..., RateLimitVerdict | None] | None = None
    """The hook's ``check_nowait`` when it has one (limits in memory: no await)."""
    deadline_header: bytes | None = None
    """The lower-case name of the deadline header, or None when it is off."""
    signer: AssertionSigner | None = None
    """Signs the caller's identity for services (``[identity]``), or None."""


@dataclass
class _Counts:
    total: dict[str, int] = field(default_factory=dict)
    last: dict[str, int] = field(default_factory=dict)
    last_at: float = 0.0
    rates: dict[str, float] = field(default_factory=dict)


class Gateway:
    """An ASGI API gateway built from a :class:`GatewayConfig`.

    ``config_path`` enables reloading from the file (:meth:`reload`, SIGHUP, and a
    modification-time check every ``watch_interval`` seconds). Hooks:

    - ``guard_factory(pool_name)`` returns the :class:`PoolGuard` of a pool; default: a
      :class:`~tracseq_kit.resilience.CircuitBreaker` per pool, configured by the pool's
      ``breaker`` table (``enabled = false`` admits everything);
    - ``retry_budget`` bounds retries; default
      :class:`~tracseq_kit.resilience.RetryBudget` (20 % of requests + 10/s);
    - ``rate_limit`` is consulted for routes with a ``rate_limit`` policy;
    - ``registry`` is the Prometheus registry for ``/metrics`` (default: the kit's);
    - ``tracer_provider`` makes the ``CLIENT`` span of each upstream attempt (default:
      the global one); they appear only under a recording ``SERVER`` span (see
      :class:`tracseq_kit.asgi.TracingMiddleware`).

    Invalid configuration raises :class:`ConfigurationError` at construction; on reload
    it is logged and the running table is kept.
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        config_path: str | Path | None = None,
        guard_factory: GuardFactory | None = None,
        retry_budget: RetryBudget | None = None,
        rate_limit: RateLimitHook | None = None,
        registry: CollectorRegistry | None = None,
        watch_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._guard_factory: GuardFactory | None = guard_factory
        self._retry_budget = retry_budget if retry_budget is not None else RetryBudget()
        self._rate_limit = rate_limit
        self._registry = registry or metrics_registry()
        self._stats = GatewayStats()
        register_stats(self._registry, self._stats)
        self._clock = clock
        self._config_path = Path(config_path) if config_path else None
        self._config_mtime = self._mtime()
        self._watch_interval = watch_interval
        self._connections = ConnectionPool(max_head_bytes=config.max_response_head_bytes)
        self._proxy = Proxy(
            self._connections, self._retry_budget, self._stats, tracer_provider=tracer_provider
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._redis: RedisRegistry | None = None
        self._counts = _Counts()
        self._started = clock()
        self._phase = "starting"  # -> "ready" after startup(), "stopping" at shutdown()
        self._snap = self._build(config, None)

    def _guard(self, name: str, pcfg: PoolConfig) -> PoolGuard:
        if self._guard_factory is not None:
            return self._guard_factory(name)
        b = pcfg.breaker
        if not b.enabled:
            return NoGuard()
        return CircuitBreaker(
            f"gateway:{name}",
            window_size=b.window_size,
            minimum_calls=b.minimum_calls,
            failure_rate_threshold=b.failure_rate_threshold,
            wait_duration=b.wait_duration,
            half_open_probes=b.half_open_probes,
            clock=self._clock,
        )

    @classmethod
    def from_file(cls, path: str | Path, **options: Any) -> Gateway:
        """Build a gateway from a TOML/YAML file and reload from it later."""
        return cls(load_config(path), config_path=path, **options)

    # -- configuration ---------------------------------------------------------
    def _build(self, config: GatewayConfig, old: _Snapshot | None) -> _Snapshot:
        pools: dict[str, _PoolState] = {}
        for name, pcfg in config.pools.items():
            prev = old.pools.get(name) if old else None
            if prev is not None and prev.cfg == pcfg:
                pools[name] = prev
                continue
            pool = UpstreamPool(
                name,
                pcfg.instances,
                balancer=pcfg.balancer,
                eject_after=pcfg.eject_after,
                eject_backoff=pcfg.eject_backoff,
                clock=self._clock,
            )
            if prev is not None:
                pool.set_addresses(pcfg.instances + prev.discovered)
            pools[name] = _PoolState(
                name, pcfg, pool, self._guard(name, pcfg), prev.discovered if prev else ()
            )
        by_name = {n: s.pool for n, s in pools.items()}
        table = RoutingTable.build(config.routes, by_name)
        self._stats.pools = by_name
        auth = Authenticator(config.auth) if (config.auth.jwt or config.auth.api_keys) else None
        api_key = auth.api_key_header if auth else config.auth.api_key_header.lower().encode()
        rate_limit = self._rate_limit
        if rate_limit is None and config.rate_limits is not None:
            rate_limit = self._limiter_hook(config, old)
        self._connections.max_head_bytes = config.max_response_head_bytes
        return _Snapshot(
            config,
            table,
            pools,
            auth,
            HOP_BY_HOP | REPLACED | {api_key},
            _SINGLETONS | {api_key},
            rate_limit,
            getattr(rate_limit, "check_nowait", None),
            config.deadline_header.lower().encode() if config.deadline_header else None,
            self._signer(config, old),
        )

    def _signer(self, config: GatewayConfig, old: _Snapshot | None) -> AssertionSigner | None:
        identity = config.identity
        if identity is None:
            return None
        if old is not None and old.config.identity == identity and old.signer is not None:
            return old.signer  # unchanged: keep its cache of fresh assertions
        key = identity.signing_key
        if key is None:
            assert identity.signing_key_file is not None
            try:
                key = Path(identity.signing_key_file).read_text()
            except OSError as exc:
                raise ConfigurationError(
                    f"identity.signing_key_file: cannot read {identity.signing_key_file}: {exc}"
                ) from None
        return AssertionSigner(key, key_id=identity.key_id, ttl=identity.ttl)

    def _limiter_hook(self, config: GatewayConfig, old: _Snapshot | None) -> RateLimitHook:
        rl = config.rate_limits
        assert rl is not None
        if old is not None and old.config.rate_limits == rl and old.rate_limit is not None:
            return old.rate_limit  # unchanged: keep the counters
        store: MemoryStore | RedisStore | None = None
        if rl.redis_url:
            import redis.asyncio as aioredis

            store = RedisStore(
                aioredis.from_url(rl.redis_url), prefix=rl.prefix, timeout=rl.timeout
            )
        return LimiterHook(rl.policies, store=store, on_failure=rl.on_failure)

    @property
    def config(self) -> GatewayConfig:
        """The configuration in force."""
        return self._snap.config

    @property
    def pools(self) -> dict[str, UpstreamPool]:
        """The upstream pools in force, by name."""
        return {n: s.pool for n, s in self._snap.pools.items()}

    def apply(self, config: GatewayConfig) -> None:
        """Swap in a new configuration; requests in flight finish on the old one."""
        self._snap = self._build(config, self._snap)

    def reload(self) -> bool:
        """Re-read the config file; keep the running config (and log) if it is invalid."""
        if self._config_path is None:
            return False
        self._config_mtime = self._mtime()
        try:
            config = load_config(self._config_path)
        except ConfigurationError as exc:
            log.error("gateway config not reloaded: %s", exc)
            return False
        self.apply(config)
        log.info("gateway config reloaded from %s", self._config_path.name)
        return True

    def _mtime(self) -> float:
        if self._config_path is None:
            return 0.0
        try:
            return os.stat(self._config_path).st_mtime
        except OSError:
            return 0.0

    # -- lifecycle ---------------------------------------------------------------
    async def startup(self) -> None:
        """Start health checks, registry watching, file watching and SIGHUP reload."""
        loop = asyncio.get_running_loop()
        if self._snap.config.registry is not None:
            reg = self._snap.config.registry
            self._redis = RedisRegistry(reg.url, prefix=reg.prefix)
            self._tasks.append(loop.create_task(self._watch_registry()))
        self._tasks.append(loop.create_task(self._health_loop()))
        if self._config_path is not None:
            self._tasks.append(loop.create_task(self._watch_file()))
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
                loop.add_signal_handler(signal.SIGHUP, self.reload)
        self._phase = "ready"

    async def shutdown(self) -> None:
        """Stop background tasks and close upstream connections."""
        self._phase = "stopping"
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await self._connections.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    async def _watch_file(self) -> None:
        while True:
            await asyncio.sleep(self._watch_interval)
            if self._mtime() != self._config_mtime:
                self.reload()

    async def _watch_registry(self) -> None:
        while True:
            await self.refresh_registry()
            reg = self._snap.config.registry
            await asyncio.sleep(reg.poll_interval if reg else 1.0)

    async def refresh_registry(self) -> None:
        """Read the Redis registry once and update pools with a ``service`` name."""
        if self._redis is None:
            return
        for state in self._snap.pools.values():
            if state.cfg.service is None:
                continue
            try:
                found = await self._redis.instances(state.cfg.service)
            except Exception as exc:  # keep the last known instances
                log.warning("registry read for %s failed: %s", state.cfg.service, exc)
                continue
            state.discovered = tuple(found)
            state.pool.set_addresses(state.cfg.instances + state.discovered)

    async def _health_loop(self) -> None:
        while True:
            interval = min((s.cfg.health_interval for s in self._snap.pools.values()), default=5)
            await self.check_health()
            await asyncio.sleep(interval)

    async def check_health(self) -> dict[str, Any]:
        """Probe every instance's health path concurrently; update and return states.

        The report is ``{"status": healthy|degraded|unhealthy, "services": {...}}`` with
        each pool's state and per-instance detail (HTTP status or error, latency).
        """
        pools = {name: (state.pool, state.cfg) for name, state in self._snap.pools.items()}
        return await check_pools(self._connections, pools, clock=self._clock)

    # -- ASGI --------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path in _INTERNAL:
                await getattr(self, _INTERNAL[path])(scope, send)
            else:
                await self._proxy.serve(scope, receive, send, self._snap)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:  # websockets are not proxied
            await send({"type": "websocket.close", "code": 1003})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- internal endpoints ------------------------------------------------------
    async def _health_endpoint(self, scope: Scope, send: Send) -> None:
        report = await self.check_health()
        status = 503 if report["status"] == "unhealthy" else 200
        await send_json(send, status, json.dumps(report).encode(), "application/json")

    async def _livez_endpoint(self, scope: Scope, send: Send) -> None:
        await send_probe(send, True, head=scope["method"] == "HEAD")

    async def _startupz_endpoint(self, scope: Scope, send: Send) -> None:
        await send_probe(send, self._phase != "starting", head=scope["method"] == "HEAD")

    async def _readyz_endpoint(self, scope: Scope, send: Send) -> None:
        # Upstream health stays out of readiness: when an upstream fails, every replica
        # sees it, and taking them all out of rotation would only turn 503s into refusals.
        await send_probe(send, self._phase == "ready", head=scope["method"] == "HEAD")

    async def _metrics_endpoint(self, scope: Scope, send: Send) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        await send_json(send, 200, generate_latest(self._registry), CONTENT_TYPE_LATEST)

    async def _status_endpoint(self, scope: Scope, send: Send) -> None:
        from tracseq_kit.gateway._status import render_status

        now = self._clock()
        counts = self._counts
        counts.total = self._stats.route_totals()
        if now - counts.last_at >= 1.0:
            span = now - counts.last_at if counts.last_at else now - self._started
            counts.rates = {
                k: (v - counts.last.get(k, 0)) / max(span, 1e-9) for k, v in counts.total.items()
            }
            counts.last = dict(counts.total)
            counts.last_at = now
        refresh_ms = 2000
        for part in scope.get("query_string", b"").split(b"&"):
            if part.startswith(b"refresh=") and part[8:].isdigit():
                refresh_ms = min(max(int(part[8:]), 100), 60_000)
        page = render_status(
            self._snap.pools, counts.total, counts.rates, now=now, refresh_ms=refresh_ms
        )
        await send_json(send, 200, page.encode(), "text/html; charset=utf-8")


_INTERNAL = {
    "/livez": "_livez_endpoint",
    "/readyz": "_readyz_endpoint",
    "/startupz": "_startupz_endpoint",
    "/health": "_health_endpoint",
    "/metrics": "_metrics_endpoint",
    "/status": "_status_endpoint",
}
