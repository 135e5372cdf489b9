"""Async context managers that yield only a server's URL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from tracseq_kit.local._kafka import EmbeddedKafka
from tracseq_kit.local._postgres import EmbeddedPostgres
from tracseq_kit.local._redis import EmbeddedRedis


@contextlib.asynccontextmanager
async def embedded_postgres(
    *, database: str = "postgres", start_timeout: float = 60.0
) -> AsyncIterator[str]:
    """Run an :class:`EmbeddedPostgres` for the duration of the block; yield its DSN.

    Raises :class:`~tracseq_kit.MissingDependencyError` without the ``local`` extra and
    :class:`~tracseq_kit.EmbeddedServerError` if the server does not start in time.
    """
    async with EmbeddedPostgres(database=database, start_timeout=start_timeout) as server:
        yield server.url


@contextlib.asynccontextmanager
async def embedded_redis(*, start_timeout: float = 15.0) -> AsyncIterator[str]:
    """Run an :class:`EmbeddedRedis` for the duration of the block; yield its ``unix://`` URL.

    Raises :class:`~tracseq_kit.MissingDependencyError` without the ``local`` extra and
    :class:`~tracseq_kit.EmbeddedServerError` if the server does not start in time.
    """
    async with EmbeddedRedis(start_timeout=start_timeout) as server:
        yield server.url


@contextlib.asynccontextmanager
async def embedded_kafka(*, brokers: int = 1, start_timeout: float = 20.0) -> AsyncIterator[str]:
    """Run an :class:`EmbeddedKafka` for the duration of the block; yield its bootstrap string.

    Raises :class:`~tracseq_kit.MissingDependencyError` without the ``local`` extra and
    :class:`~tracseq_kit.EmbeddedServerError` if the broker does not start in time.
    """
    async with EmbeddedKafka(brokers=brokers, start_timeout=start_timeout) as server:
        yield server.url
