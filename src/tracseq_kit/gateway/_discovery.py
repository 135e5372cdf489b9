"""A Redis service registry: services register with a TTL heartbeat, gateways read it.

Layout: one sorted set per service, ``{prefix}:registry:{service}``, whose members are
``host:port`` and whose scores are the Unix time at which the registration expires.
A registered instance refreshes its score every ``ttl / 3`` seconds; readers ignore
(and prune) expired members, so a crashed instance disappears within ``ttl`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from tracseq_kit._exceptions import ConfigurationError, DependencyUnavailableError

__all__ = ["RedisRegistry", "register_instance"]

log = logging.getLogger("tracseq_kit.gateway")


def _redis_client(url: str) -> Any:
    try:
        import redis.asyncio as aioredis
    except ImportError:  # pragma: no cover - depends on the environment
        from tracseq_kit._exceptions import MissingDependencyError

        raise MissingDependencyError("redis", extra="gateway", purpose="The registry") from None
    return aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)


class RedisRegistry:
    """Reads and writes service registrations in Redis.

    ``clock`` returns Unix seconds (injectable for tests). Redis errors are raised as
    :class:`DependencyUnavailableError`.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "tracseq",
        clock: Callable[[], float] = time.time,
        client: Any = None,
    ) -> None:
        self._client = client if client is not None else _redis_client(url)
        self._owns_client = client is None
        self._prefix = prefix
        self._clock = clock

    def key(self, service: str) -> str:
        """The sorted-set key of ``service``."""
        return f"{self._prefix}:registry:{service}"

    async def register(self, service: str, address: str, *, ttl: float) -> None:
        """Register (or refresh) ``address`` for ``ttl`` seconds."""
        await self._call(self._client.zadd(self.key(service), {address: self._clock() + ttl}))

    async def deregister(self, service: str, address: str) -> None:
        """Remove ``address`` now."""
        await self._call(self._client.zrem(self.key(service), address))

    async def instances(self, service: str) -> list[str]:
        """Live addresses of ``service`` (expired ones are pruned)."""
        key = self.key(service)
        now = self._clock()
        pipe = self._client.pipeline(transaction=False)
        pipe.zremrangebyscore(key, "-inf", now)
        pipe.zrangebyscore(key, now, "+inf")
        _, members = await self._call(pipe.execute())
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def _call(self, awaitable: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise DependencyUnavailableError(f"service registry unavailable: {exc}") from exc

    async def aclose(self) -> None:
        """Close the Redis connection if this registry created it."""
        if self._owns_client:
            await self._client.aclose()


@contextlib.asynccontextmanager
async def register_instance(
    service: str,
    address: str,
    *,
    redis_url: str = "redis://127.0.0.1:6379/0",
    prefix: str = "tracseq",
    ttl: float = 10.0,
    registry: RedisRegistry | None = None,
) -> AsyncIterator[RedisRegistry]:
    """Register this process as an instance of ``service`` while the block runs.

    Call it at service start (e.g. in the lifespan) with the ``host:port`` the gateway
    should use. The registration is refreshed every ``ttl / 3`` seconds in the
    background (a failed refresh is logged and retried) and removed on exit. Raises
    :class:`DependencyUnavailableError` if the first registration fails.
    """
    if ttl <= 0:
        raise ConfigurationError(f"ttl must be positive, got {ttl}")
    reg = registry or RedisRegistry(redis_url, prefix=prefix)
    await reg.register(service, address, ttl=ttl)

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                await reg.register(service, address, ttl=ttl)
            except DependencyUnavailableError as exc:
                log.warning("registry heartbeat for %s failed: %s", service, exc)

    task = asyncio.create_task(heartbeat())
    try:
        yield reg
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(DependencyUnavailableError):
            await reg.deregister(service, address)
        if registry is None:
            await reg.aclose()
