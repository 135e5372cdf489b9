"""The gateway's configuration file: routes, upstream pools, auth and limits.

A TOML (``.toml``) or YAML (``.yaml``/``.yml``) file is parsed and validated into a
frozen :class:`GatewayConfig`. Every mistake raises :class:`ConfigurationError` whose
message names the file and the bad key, e.g.
``gateway.toml: routes[2].upstream: unknown pool 'x'``.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.ratelimit import PolicyConfig

__all__ = [
    "ApiKeyConfig",
    "AuthConfig",
    "GatewayConfig",
    "IdentityConfig",
    "JwtConfig",
    "JwtKeyConfig",
    "PoolConfig",
    "RegistryConfig",
    "RouteConfig",
    "RouteScopes",
    "load_config",
    "parse_config",
]

_INSTANCE = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BreakerConfig(_Model):
    """The circuit breaker in front of one pool (upstream 5xx, connect errors and
    timeouts count as failures); see :class:`tracseq_kit.resilience.CircuitBreaker`."""

    enabled: bool = True
    window_size: int = Field(default=50, ge=1)
    minimum_calls: int = Field(default=20, ge=1)
    failure_rate_threshold: float = Field(default=0.5, gt=0, le=1)
    wait_duration: float = Field(default=10.0, ge=0)
    half_open_probes: int = Field(default=3, ge=1)


class PoolConfig(_Model):
    """An upstream pool: where its instances come from and how they are balanced."""

    instances: tuple[str, ...] = ()
    """Static ``host:port`` instances."""
    service: str | None = None
    """Also take instances registered under this name in the Redis registry."""
    balancer: Literal["round_robin", "least_outstanding"] = "least_outstanding"
    health_path: str = "/readyz"
    health_interval: float = Field(default=5.0, gt=0)
    health_timeout: float = Field(default=1.0, gt=0)
    eject_after: int = Field(default=5, ge=1)
    """Consecutive failures (connect errors, 502/503/504) that eject an instance."""
    eject_backoff: float = Field(default=10.0, gt=0)
    """Seconds an ejected instance stays out; doubles on repeated ejection (max 8x)."""
    connect_timeout: float = Field(default=2.0, gt=0)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    audience: str | None = None
    """Who the signed identity assertion is for: the service's ``identity_audience``
    (default: the pool's name)."""

    @field_validator("instances")
    @classmethod
    def _valid_instances(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            m = _INSTANCE.fullmatch(item)
            if m is None or not 0 < int(m["port"]) < 65536:
                raise ValueError(f"instance {item!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _has_source(self) -> PoolConfig:
        if not self.instances and self.service is None:
            raise ValueError("a pool needs static 'instances' or a registry 'service' name")
        return self


class RouteScopes(_Model):
    """Scopes of a route by kind of method."""

    read: tuple[str, ...] = ()
    """For GET, HEAD and OPTIONS."""
    write: tuple[str, ...] = ()
    """For every other method."""


class RouteConfig(_Model):
    """One route: which requests match, and where and how they go."""

    prefix: str
    upstream: str
    """Name of the pool in ``pools``."""
    strip_prefix: bool = False
    rewrite: str | None = None
    """Replace the matched prefix with this path (implies stripping)."""
    methods: tuple[str, ...] = ()
    host: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    """Headers (name → exact value) the request must carry."""
    timeout: float = Field(default=30.0, gt=0)
    """Seconds the upstream may take: to answer with a response head once the request
    is sent, and between two chunks of its response body (504 when the head is late)."""
    auth: bool = False
    """Require an authenticated identity (JWT or API key); implied by ``scopes``."""
    scopes: tuple[str, ...] | RouteScopes = ()
    """Scopes the caller's credentials must hold: a list for every method, or
    ``{read = [...], write = [...]}`` (read: GET, HEAD, OPTIONS; write: the others).
    ``admin`` holds every scope. Missing ones are a 403."""
    rate_limit: str | None = None
    """Name of the rate-limit policy applied to this route."""
    retry: bool = True
    """Retry idempotent requests (or ones with an Idempotency-Key) on another instance."""

    @field_validator("prefix")
    @classmethod
    def _valid_prefix(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"prefix {value!r} must start with '/'")
        return value

    @field_validator("rewrite")
    @classmethod
    def _valid_rewrite(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"rewrite {value!r} must start with '/'")
        return value

    @field_validator("methods")
    @classmethod
    def _upper_methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(m.upper() for m in value)


class JwtKeyConfig(_Model):
    """A verification key bound to exactly one algorithm (this prevents key confusion)."""

    alg: Literal["HS256", "RS256", "ES256", "EdDSA"]
    kid: str | None = None
    secret: str | None = None
    """Shared secret for HS256."""
    public_key: str | None = None
    """PEM public key for RS256/ES256/EdDSA (Ed25519)."""
    public_key_file: str | None = None

    @model_validator(mode="after")
    def _material_matches_alg(self) -> JwtKeyConfig:
        if self.alg == "HS256":
            if not self.secret or self.public_key or self.public_key_file:
                raise ValueError("an HS256 key needs 'secret' and no public key")
        elif self.secret or not (self.public_key or self.public_key_file):
            raise ValueError(f"an {self.alg} key needs 'public_key' or 'public_key_file'")
        return self


class JwtConfig(_Model):
    """JWT verification: allowed algorithms, keys, issuer, audience, leeway."""

    algorithms: tuple[Literal["HS256", "RS256", "ES256", "EdDSA"], ...]
    keys: tuple[JwtKeyConfig, ...] = ()
    jwks_url: str | None = None
    jwks_cache_seconds: float = Field(default=300.0, gt=0)
    """Seconds the keys fetched from ``jwks_url`` are used before they are fetched again."""
    jwks_min_refresh_seconds: float = Field(default=1.0, ge=0)
    """A token naming a key id not in the cached keys fetches them again at once (the
    issuer rotated its key), at most once per this many seconds; a request arriving
    sooner waits for the next fetch when that is at most a second away."""
    issuer: str | None = None
    audience: str | None = None
    leeway: float = Field(default=30.0, ge=0, le=300)
    scopes_claim: str = "scope"

    @model_validator(mode="after")
    def _has_keys(self) -> JwtConfig:
        if not self.algorithms:
            raise ValueError("'algorithms' must list at least one algorithm")
        if not self.keys and not self.jwks_url:
            raise ValueError("JWT auth needs 'keys' or a 'jwks_url'")
        for i, key in enumerate(self.keys):
            if key.alg not in self.algorithms:
                raise ValueError(f"keys[{i}].alg {key.alg!r} is not in 'algorithms'")
        return self


class ApiKeyConfig(_Model):
    """An API key stored as the hex SHA-256 of the key (never the key itself)."""

    id: str
    sha256: str
    scopes: tuple[str, ...] = ()

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("sha256 must be 64 lowercase hex digits (sha256 of the key)")
        return value


class AuthConfig(_Model):
    """Authentication methods accepted on routes with ``auth = true``."""

    jwt: JwtConfig | None = None
    api_keys: tuple[ApiKeyConfig, ...] = ()
    api_key_header: str = "x-api-key"


class RegistryConfig(_Model):
    """Where the Redis service registry lives and how often it is read."""

    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "tracseq"
    poll_interval: float = Field(default=1.0, gt=0, le=60)


class IdentityConfig(_Model):
    """How the gateway asserts a caller's identity to services: a short JWT signed with
    its Ed25519 key in ``X-Tracseq-Identity``, for one service (the pool's ``audience``)."""

    signing_key_file: str | None = None
    """A PEM Ed25519 private key (PKCS #8); or ``signing_key`` inline."""
    signing_key: str | None = None
    key_id: str = "gateway-1"
    """The ``kid`` services look the public key up by (rotate: new key, new id)."""
    ttl: float = Field(default=30.0, ge=1, le=300)
    """Seconds an assertion is valid."""

    @model_validator(mode="after")
    def _one_key(self) -> IdentityConfig:
        if (self.signing_key_file is None) == (self.signing_key is None):
            raise ValueError("give one of 'signing_key_file' or 'signing_key'")
        return self


class RateLimitsConfig(_Model):
    """Named rate-limit policies that routes refer to by ``rate_limit = "<name>"``.

    With ``redis_url`` every gateway process shares the limits through Redis;
    ``on_failure`` applies while Redis is unreachable (see :mod:`tracseq_kit.ratelimit`).
    """

    policies: dict[str, PolicyConfig]
    redis_url: str | None = None
    prefix: str = "tracseq:gateway:rl:"
    timeout: float = Field(default=0.1, gt=0)
    on_failure: Literal["open", "closed", "local"] = "local"


class GatewayConfig(_Model):
    """The whole gateway configuration (see the module docstring for the file format)."""

    pools: dict[str, PoolConfig]
    routes: tuple[RouteConfig, ...]
    auth: AuthConfig = AuthConfig()
    registry: RegistryConfig | None = None
    rate_limits: RateLimitsConfig | None = None
    identity: IdentityConfig | None = None
    """Sign the caller's identity to services; without it services receive none."""
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=0)
    """Request body limit; a larger body gets 413 (also when streamed without a length)."""
    max_response_head_bytes: int = Field(default=64 * 1024, ge=1024)
    """Bound of an upstream response head (and of its trailers); a larger one is a 502."""
    client_timeout: float = Field(default=60.0, gt=0)
    """Seconds one write of the response to the client, or one read of its request body,
    may take. A slow client is cut after this, and the upstream is not blamed; the
    upstream is bounded by the route's ``timeout``."""
    deadline_header: str | None = "x-request-deadline-ms"
    """Header carrying the request's deadline upstream, in ms: the route timeout, or
    less when the client sent a shorter one in the same header (the resilience
    module's format, read by services with ``deadline_from_headers``). Empty disables."""

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        for i, route in enumerate(self.routes):
            if route.upstream not in self.pools:
                raise _KeyError(f"routes[{i}].upstream", f"unknown pool {route.upstream!r}")
            if (route.auth or route.scopes) and self.auth.jwt is None and not self.auth.api_keys:
                key = "auth" if route.auth else "scopes"
                raise _KeyError(
                    f"routes[{i}].{key}", "needs an [auth] section with jwt or api_keys"
                )
            if route.rate_limit is not None and (
                self.rate_limits is None or route.rate_limit not in self.rate_limits.policies
            ):
                raise _KeyError(
                    f"routes[{i}].rate_limit",
                    f"unknown policy {route.rate_limit!r} (define it under [rate_limits.policies])",
                )
        for name, pool in self.pools.items():
            if pool.service is not None and self.registry is None:
                raise _KeyError(f"pools.{name}.service", "needs a [registry] section")
        return self


class _KeyError(ValueError):
    def __init__(self, loc: str, message: str) -> None:
        super().__init__(f"{loc}: {message}")
        self.loc = loc


def _loc(parts: tuple[int | str, ...]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def parse_config(data: Any, *, source: str = "config") -> GatewayConfig:
    """Validate already-parsed data; raises :class:`ConfigurationError` naming the bad key."""
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            ctx_err = (err.get("ctx") or {}).get("error")
            if isinstance(ctx_err, _KeyError):
                lines.append(str(ctx_err))
                continue
            loc = _loc(tuple(err["loc"]))
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{loc}: {msg}" if loc else msg)
        raise ConfigurationError(f"{source}: " + "; ".join(lines)) from None


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a TOML or YAML gateway configuration file.

    Raises :class:`ConfigurationError` when the file is missing, unparsable or invalid;
    the message starts with the file name and names the bad key.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read gateway config: {exc}") from exc
    if path.suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{path.name}: invalid TOML: {exc}") from None
    elif path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:  # pragma: no cover - depends on the environment
            from tracseq_kit._exceptions import MissingDependencyError

            raise MissingDependencyError("pyyaml", extra="gateway", purpose="YAML config") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"{path.name}: invalid YAML: {exc}") from None
    else:
        raise ConfigurationError(f"{path.name}: use a .toml, .yaml or .yml file")
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path.name}: the top level must be a table/mapping")
    return parse_config(data, source=path.name)
