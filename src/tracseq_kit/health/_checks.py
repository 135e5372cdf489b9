"""Built-in health checks: PostgreSQL, Redis, Kafka, an HTTP dependency, any callable.

A check is an object with ``component_type``, ``measurement``, ``observed_unit`` and an
async ``__call__`` that returns an observed value (or None) and raises when the
dependency is unhealthy. Checks that own a connection reuse it between runs and
re-connect after a failure; ``aclose()`` releases it.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import anyio
import httpx

from tracseq_kit._exceptions import DependencyUnavailableError, MissingDependencyError

__all__ = [
    "CallableCheck",
    "HealthCheck",
    "HttpCheck",
    "KafkaCheck",
    "PostgresCheck",
    "RedisCheck",
]


@runtime_checkable
class HealthCheck(Protocol):
    """What :class:`~tracseq_kit.health.HealthRegistry` runs.

    ``__call__`` returns the observed value (or None) and raises when unhealthy.
    """

    component_type: str
    measurement: str
    observed_unit: str | None

    async def __call__(self) -> object:
        """Probe the dependency once."""
        ...


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


class PostgresCheck:
    """Runs ``SELECT 1`` on an asyncpg pool, or on a connection it keeps to ``dsn``.

    Observes the round-trip time in milliseconds. Raises
    :class:`~tracseq_kit.MissingDependencyError` (extra ``postgres``) if asyncpg is
    missing and a DSN is given.
    """

    component_type = "datastore"
    measurement = "responseTime"
    observed_unit: str | None = "ms"

    def __init__(self, target: Any) -> None:
        self._pool = None if isinstance(target, str) else target
        self._dsn = target if isinstance(target, str) else None
        self._conn: Any = None
        if self._dsn is not None:
            try:
                import asyncpg  # noqa: F401
            except ImportError as exc:
                raise MissingDependencyError(
                    "asyncpg", extra="postgres", purpose="The PostgreSQL health check"
                ) from exc

    async def __call__(self) -> object:
        start = time.perf_counter()
        if self._pool is not None:
            await self._pool.fetchval("SELECT 1")
            return _ms_since(start)
        import asyncpg

        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn)
            await self._conn.fetchval("SELECT 1")
        except BaseException:
            await self.aclose()
            raise
        return _ms_since(start)

    async def aclose(self) -> None:
        """Close the connection this check opened (not a pool it was given)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()


class RedisCheck:
    """Sends ``PING`` through a redis-py asyncio client, or one it makes from a URL.

    Observes the round-trip time in milliseconds. Raises
    :class:`~tracseq_kit.MissingDependencyError` (extra ``redis``) if redis-py is missing
    and a URL is given.
    """

    component_type = "datastore"
    measurement = "responseTime"
    observed_unit: str | None = "ms"

    def __init__(self, target: Any) -> None:
        self._owned = isinstance(target, str)
        if self._owned:
            try:
                import redis.asyncio as aioredis
            except ImportError as exc:
                raise MissingDependencyError(
                    "redis", extra="redis", purpose="The Redis health check"
                ) from exc
            self._client: Any = aioredis.from_url(target)
        else:
            self._client = target

    async def __call__(self) -> object:
        start = time.perf_counter()
        await self._client.ping()
        return _ms_since(start)

    async def aclose(self) -> None:
        """Close the client this check made (not one it was given)."""
        if self._owned:
            await self._client.aclose()


class KafkaCheck:
    """Requests cluster metadata over one kept aiokafka client connection.

    Observes the number of brokers. Raises :class:`~tracseq_kit.DependencyUnavailableError`
    when the cluster reports no broker, and :class:`~tracseq_kit.MissingDependencyError`
    (extra ``kafka``) if aiokafka is missing.
    """

    component_type = "component"
    measurement = "brokers"
    observed_unit: str | None = None

    def __init__(self, bootstrap_servers: str, **client_options: Any) -> None:
        try:
            import aiokafka  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                "aiokafka", extra="kafka", purpose="The Kafka health check"
            ) from exc
        self._bootstrap = bootstrap_servers
        self._options = client_options
        self._client: Any = None

    async def __call__(self) -> object:
        from aiokafka.client import AIOKafkaClient

        try:
            if self._client is None:
                client = AIOKafkaClient(bootstrap_servers=self._bootstrap, **self._options)
                self._client = client
                await client.bootstrap()
            metadata = await self._client.fetch_all_metadata()
        except BaseException:
            await self.aclose()
            raise
        brokers = len(metadata.brokers())
        if brokers == 0:
            raise DependencyUnavailableError("the Kafka cluster reports no broker")
        return brokers

    async def aclose(self) -> None:
        """Close the kept client connection."""
        client, self._client = self._client, None
        if client is not None:
            with anyio.CancelScope(shield=True):
                await client.close()


class HttpCheck:
    """GETs ``url`` and expects a status in ``expected`` (2xx by default).

    Observes the response time in milliseconds. Reuses one httpx client (pass your own
    to share a pool). Raises :class:`~tracseq_kit.DependencyUnavailableError` on an
    unexpected status.
    """

    component_type = "component"
    measurement = "responseTime"
    observed_unit: str | None = "ms"

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        expected: Callable[[int], bool] = lambda status: 200 <= status < 300,
    ) -> None:
        self._url = url
        self._owned = client is None
        self._client = client if client is not None else httpx.AsyncClient()
        self._expected = expected

    async def __call__(self) -> object:
        start = time.perf_counter()
        response = await self._client.get(self._url)
        if not self._expected(response.status_code):
            raise DependencyUnavailableError(f"{self._url} answered {response.status_code}")
        return _ms_since(start)

    async def aclose(self) -> None:
        """Close the client this check made (not one it was given)."""
        if self._owned:
            await self._client.aclose()


class CallableCheck:
    """Wraps any callable, sync or async, as a check.

    The callable may return ``False`` (unhealthy), ``True``/``None`` (healthy) or any
    other value (healthy, reported as the observed value), or raise (unhealthy). A sync
    callable runs in a worker thread so a blocking one cannot stall the event loop or
    outlive its timeout.
    """

    def __init__(
        self,
        fn: Callable[[], object] | Callable[[], Awaitable[object]],
        *,
        component_type: str = "component",
        measurement: str = "status",
        observed_unit: str | None = None,
    ) -> None:
        self._fn = fn
        # Also async: instances whose __call__ is a coroutine function.
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            type(fn).__call__
        )
        self.component_type = component_type
        self.measurement = measurement
        self.observed_unit = observed_unit

    async def __call__(self) -> object:
        if self._is_async:
            value = await self._fn()  # type: ignore[misc]
        else:
            value = await anyio.to_thread.run_sync(self._fn, abandon_on_cancel=True)
            if inspect.isawaitable(value):
                value = await value
        if value is False:
            raise DependencyUnavailableError("the check reported unhealthy")
        return None if value is True else value
