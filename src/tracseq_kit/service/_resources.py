"""Resources a service opens at startup and closes at shutdown, in reverse order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from pydantic import SecretStr

from tracseq_kit._exceptions import MissingDependencyError


@dataclass(frozen=True, slots=True)
class Resource:
    """A named resource: ``open()`` returns an async context manager yielding the object
    handlers use (a pool, a client, a producer); leaving it closes the resource.

    ``check``, if given, is called with that object and must raise when the resource is
    unhealthy; the chassis registers it as a readiness check named ``name``.
    """

    name: str
    open: Callable[[], AbstractAsyncContextManager[Any]]
    check: Callable[[Any], Awaitable[object]] | None = field(default=None)


def _secret(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def postgres_pool(dsn: str | SecretStr, *, name: str = "postgres", **options: Any) -> Resource:
    """An asyncpg connection pool; ``options`` go to ``asyncpg.create_pool`` unchanged.

    Raises ``MissingDependencyError`` (extra ``postgres``) at once if asyncpg is missing.
    """
    try:
        import asyncpg
    except ImportError:
        raise MissingDependencyError(
            "asyncpg", extra="postgres", purpose="The postgres_pool resource"
        ) from None

    @asynccontextmanager
    async def open_pool() -> AsyncIterator[Any]:
        pool = await asyncpg.create_pool(_secret(dsn), **options)
        try:
            yield pool
        finally:
            await pool.close()

    async def check(pool: Any) -> None:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    return Resource(name, open_pool, check)


def redis_client(url: str | SecretStr, *, name: str = "redis", **options: Any) -> Resource:
    """A ``redis.asyncio.Redis`` client; ``options`` go to ``Redis.from_url`` unchanged.

    Raises ``MissingDependencyError`` (extra ``redis``) at once if redis-py is missing.
    """
    try:
        from redis import asyncio as aioredis
    except ImportError:
        raise MissingDependencyError(
            "redis", extra="redis", purpose="The redis_client resource"
        ) from None

    @asynccontextmanager
    async def open_client() -> AsyncIterator[Any]:
        client = aioredis.Redis.from_url(_secret(url), **options)
        try:
            await client.ping()
            yield client
        finally:
            await client.aclose()

    async def check(client: Any) -> None:
        await client.ping()

    return Resource(name, open_client, check)


def kafka_producer(bootstrap_servers: str, *, name: str = "kafka", **options: Any) -> Resource:
    """A started ``aiokafka.AIOKafkaProducer``; ``options`` go to its constructor unchanged.

    Raises ``MissingDependencyError`` (extra ``kafka``) at once if aiokafka is missing.
    """
    try:
        from aiokafka import AIOKafkaProducer
    except ImportError:
        raise MissingDependencyError(
            "aiokafka", extra="kafka", purpose="The kafka_producer resource"
        ) from None

    @asynccontextmanager
    async def open_producer() -> AsyncIterator[Any]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, **options)
        await producer.start()
        try:
            yield producer
        finally:
            await producer.stop()

    async def check(producer: Any) -> None:
        if not await producer.client.force_metadata_update():
            raise ConnectionError("Kafka metadata request failed")

    return Resource(name, open_producer, check)


class Resources(Mapping[str, Any]):
    """The open resources of a running service, by name (``request.app.state.resources``).

    Looking up a name that is not open raises ``KeyError`` naming the open ones.
    """

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}

    def _add(self, name: str, value: Any) -> None:
        self._items[name] = value

    def _clear(self) -> None:
        self._items.clear()

    def __getitem__(self, name: str) -> Any:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"no open resource {name!r}; open ones: {sorted(self._items)}") from None

    def __iter__(self) -> Any:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def resource(name: str) -> Any:
    """A FastAPI dependency marker for the open resource ``name``, to type a parameter::

        Postgres = Annotated[asyncpg.Pool, resource("postgres")]

        @router.get("/api/templates/{template_id}")
        async def get_template(template_id: str, db: Postgres) -> Template: ...

    A handler asking for a resource the service did not open fails with ``KeyError``
    naming the open ones (a programming error, answered as a 500 and logged).
    """

    def opened(request: Request) -> Any:
        return request.app.state.resources[name]

    opened.__name__ = f"resource_{name}"
    return Depends(opened)
