"""Pure ASGI rate-limiting middleware with IETF headers and problem+json 429s."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.asgi._problem import send_problem
from tracseq_kit.asgi._types import ASGIApp, Message, Receive, Scope, Send
from tracseq_kit.ratelimit._headers import ratelimit_headers
from tracseq_kit.ratelimit._limiter import FailurePolicy, RateLimiter
from tracseq_kit.ratelimit._memory import MemoryStore
from tracseq_kit.ratelimit._policy import GCRA, Policy, SlidingWindow
from tracseq_kit.ratelimit._redis import RedisStore

__all__ = ["PolicyConfig", "RateLimitConfig", "RateLimitMiddleware", "RouteLimit", "client_ip"]

KeyFunc = Callable[[Scope], str | None]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyConfig(_Model):
    """One policy in configuration: ``gcra`` (rate + burst) or ``sliding_window``."""

    kind: Literal["gcra", "sliding_window"] = "gcra"
    limit: int = Field(ge=1)
    period: float = Field(gt=0, description="seconds")
    burst: int | None = Field(default=None, ge=1)

    def build(self, name: str) -> Policy:
        """The policy object for ``name``."""
        if self.kind == "gcra":
            return GCRA(name, self.limit, self.period, self.burst)
        if self.burst is not None:
            raise ConfigurationError(f"policy {name!r}: burst only applies to gcra")
        return SlidingWindow(name, self.limit, self.period)


class RouteLimit(_Model):
    """Policies for requests whose path starts with ``prefix`` (optionally ``methods``)."""

    prefix: str
    policies: tuple[str, ...]
    methods: tuple[str, ...] = ()
    key: Literal["client", "route"] = "client"
    """``client``: each client has its own quota; ``route``: one quota for everyone."""


class RateLimitConfig(_Model):
    """Limits from configuration: named policies, the default set, per-route and
    per-tenant sets. References to unknown policies fail validation naming them."""

    policies: dict[str, PolicyConfig]
    default: tuple[str, ...] = ()
    routes: tuple[RouteLimit, ...] = ()
    tenants: dict[str, tuple[str, ...]] = {}
    key: Literal["ip", "api_key", "identity"] = "ip"
    api_key_header: str = "x-api-key"
    trusted_proxies: tuple[str, ...] = ()
    """CIDRs of proxies whose X-Forwarded-For is believed (e.g. the gateway's)."""
    on_failure: FailurePolicy = "local"

    @model_validator(mode="after")
    def _references(self) -> RateLimitConfig:
        known = set(self.policies)
        refs = [("default", self.default)]
        refs += [(f"routes[{i}].policies", r.policies) for i, r in enumerate(self.routes)]
        refs += [(f"tenants.{t}", p) for t, p in self.tenants.items()]
        for where, names in refs:
            for name in names:
                if name not in known:
                    raise ValueError(f"{where}: unknown policy {name!r}")
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {exc}") from None
        return self

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> RateLimitConfig:
        """Validate ``data``; raise ConfigurationError naming the bad key."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ConfigurationError(f"invalid rate-limit configuration: {problems}") from None


def client_ip(
    scope: Scope, trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> str:
    """The client address: the peer, or — only when the peer is a trusted proxy — the
    right-most X-Forwarded-For entry that is not itself a trusted proxy."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            hops += [h.strip() for h in bytes(value).decode("latin-1").split(",")]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop if _valid_ip(hop) else peer
    return hops[0] if hops and _valid_ip(hops[0]) else peer


def _valid_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_trusted(
    addr: str, trusted: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


class RateLimitMiddleware:
    """Limits HTTP requests per client, per route and per tenant.

    Configure with a :class:`RateLimitConfig` (or a mapping of it). The client key is
    the client IP (X-Forwarded-For only believed from ``trusted_proxies``), the API key
    header, or the authenticated identity that an auth layer put in
    ``scope["state"]["identity"]`` (never an unverified token); pass ``key_func`` to
    use anything else. The policies are the first matching route's, else the tenant's
    (``tenant_func(scope)``, default ``scope["state"]["tenant"]``), else ``default``.

    Every limited response carries ``RateLimit-Policy`` and ``RateLimit``; a rejected
    request gets 429 with ``Retry-After`` and a problem+json body naming the violated
    policy. Requests matching no policy pass untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: RateLimitConfig | Mapping[str, Any],
        store: MemoryStore | RedisStore | None = None,
        key_func: KeyFunc | None = None,
        tenant_func: KeyFunc | None = None,
    ) -> None:
        self.app = app
        cfg = config if isinstance(config, RateLimitConfig) else RateLimitConfig.parse(config)
        self.config = cfg
        policies = {name: pc.build(name) for name, pc in cfg.policies.items()}
        self._limiters: dict[tuple[str, ...], RateLimiter] = {}

        def limiter(names: tuple[str, ...]) -> RateLimiter:
            if names not in self._limiters:
                self._limiters[names] = RateLimiter(
                    [policies[n] for n in names],
                    store=store,
                    on_failure=cfg.on_failure,
                    name="+".join(names),
                )
            return self._limiters[names]

        self._routes = [
            (r.prefix, frozenset(m.upper() for m in r.methods), r.key, limiter(r.policies))
            for r in cfg.routes
        ]
        self._tenants = {t: limiter(p) for t, p in cfg.tenants.items()}
        self._default = limiter(cfg.default) if cfg.default else None
        self._trusted = [ipaddress.ip_network(c, strict=False) for c in cfg.trusted_proxies]
        self._api_key = cfg.api_key_header.lower().encode()
        self._key_func = key_func or self._default_key
        self._tenant_func = tenant_func or _state_value("tenant")

    def _default_key(self, scope: Scope) -> str | None:
        kind = self.config.key
        if kind == "api_key":
            for name, value in scope.get("headers", ()):
                if name == self._api_key:
                    return "key:" + bytes(value).decode("latin-1")
            return "ip:" + client_ip(scope, self._trusted)
        if kind == "identity":
            ident = _state_value("identity")(scope)
            if ident:
                return "id:" + ident
        return "ip:" + client_ip(scope, self._trusted)

    def _select(self, scope: Scope) -> tuple[RateLimiter | None, str | None]:
        path: str = scope["path"]
        method: str = scope["method"]
        for prefix, methods, key_kind, lim in self._routes:
            if path.startswith(prefix) and (not methods or method in methods):
                if key_kind == "route":
                    return lim, "route:" + prefix
                return lim, self._key_func(scope)
        tenant = self._tenant_func(scope)
        if tenant is not None and tenant in self._tenants:
            return self._tenants[tenant], self._key_func(scope)
        return self._default, self._key_func(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lim, key = self._select(scope)
        if lim is None or key is None:
            await self.app(scope, receive, send)
            return
        decision = await lim.acquire(key)
        headers = ratelimit_headers(decision, lim.policies)
        if not decision.allowed:
            await send_problem(
                send,
                429,
                title="Too Many Requests",
                detail=f"rate limit {decision.policy!r} exceeded; retry after "
                f"{headers[-1][1].decode()} s",
                type_="https://tracseq.dev/problems/rate-limited",
                extensions={"policy": decision.policy},
                headers=headers,
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _state_value(name: str) -> KeyFunc:
    def read(scope: Scope) -> str | None:
        state = scope.get("state")
        value = state.get(name) if isinstance(state, Mapping) else None
        if value is None:
            return None
        return str(getattr(value, "subject", value))

    return read
