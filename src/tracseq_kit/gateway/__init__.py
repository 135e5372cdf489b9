"""The TracSeq API gateway: routing, discovery, load balancing, auth and health.

Build one from a configuration file and serve it with any ASGI server::

    from tracseq_kit.gateway import Gateway

    app = Gateway.from_file("gateway.toml")

or run ``python -m tracseq_kit.gateway --config gateway.toml``. Services register
with the Redis registry through :func:`register_instance`. Circuit breakers, retry
budgets and rate limiters plug in through :class:`PoolGuard`,
:class:`~tracseq_kit.resilience.RetryBudget` and :class:`RateLimitHook`.
"""

from tracseq_kit.gateway._app import Gateway
from tracseq_kit.gateway._auth import Authenticator, AuthError, hash_api_key
from tracseq_kit.gateway._config import (
    ApiKeyConfig,
    AuthConfig,
    GatewayConfig,
    JwtConfig,
    JwtKeyConfig,
    PoolConfig,
    RegistryConfig,
    RouteConfig,
    load_config,
    parse_config,
)
from tracseq_kit.gateway._discovery import RedisRegistry, register_instance
from tracseq_kit.gateway._hooks import (
    AllowAllRateLimit,
    NoGuard,
    PoolGuard,
    RateLimitHook,
    RateLimitVerdict,
)
from tracseq_kit.gateway._pool import Instance, UpstreamPool
from tracseq_kit.gateway._routing import Route, RoutingTable

__all__ = [
    "AllowAllRateLimit",
    "ApiKeyConfig",
    "AuthConfig",
    "AuthError",
    "Authenticator",
    "Gateway",
    "GatewayConfig",
    "Instance",
    "JwtConfig",
    "JwtKeyConfig",
    "NoGuard",
    "PoolConfig",
    "PoolGuard",
    "RateLimitHook",
    "RateLimitVerdict",
    "RedisRegistry",
    "RegistryConfig",
    "Route",
    "RouteConfig",
    "RoutingTable",
    "UpstreamPool",
    "hash_api_key",
    "load_config",
    "parse_config",
    "register_instance",
]


def __getattr__(name: str) -> object:
    # Identity moved to tracseq_kit.identity (services receive it too); the old path still
    # works for a while, with a warning.
    if name == "Identity":
        import warnings

        from tracseq_kit.identity import Identity

        warnings.warn(
            "tracseq_kit.gateway.Identity moved to tracseq_kit.identity.Identity",
            DeprecationWarning,
            stacklevel=2,
        )
        return Identity
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
