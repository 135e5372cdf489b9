"""Per-test isolation on shared servers: schemas, databases, key prefixes, topic names."""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tracseq_kit._exceptions import ConfigurationError, MissingDependencyError

T = TypeVar("T")

_NOT_NAME = re.compile(r"[^a-z0-9_]+")
_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]+")
_MAX_TOPIC_LENGTH = 249
_MAX_IDENTIFIER_LENGTH = 63


def unique_name(base: str, *, max_length: int = _MAX_IDENTIFIER_LENGTH) -> str:
    """``base`` reduced to ``[a-z0-9_]``, trimmed, plus ``_`` and 12 random hex digits.

    The result is a valid unquoted PostgreSQL identifier and Kafka topic name, unique
    with overwhelming probability, and never longer than ``max_length``.
    """
    suffix = uuid.uuid4().hex[:12]
    stem = _NOT_NAME.sub("_", base.lower()).strip("_") or "t"
    if stem[0].isdigit():
        stem = "t" + stem
    keep = max(1, max_length - len(suffix) - 1)
    return f"{stem[:keep].rstrip('_') or 't'}_{suffix}"


class TopicFactory(Protocol):
    """Returns a fresh, valid Kafka topic name built from ``base`` on each call."""

    def __call__(self, base: str = "topic") -> str: ...


def topic_name(base: str = "topic") -> str:
    """A unique Kafka topic name: ``base`` (checked) plus ``.`` and 12 random hex digits.

    Raises :class:`~tracseq_kit.ConfigurationError` if ``base`` has characters Kafka
    rejects (allowed: letters, digits, ``.``, ``_``, ``-``) or is too long.
    """
    if not _TOPIC_CHARS.fullmatch(base):  # match() with "$" would accept a trailing newline
        raise ConfigurationError(
            f"topic base {base!r} may only contain letters, digits, '.', '_' and '-'"
        )
    name = f"{base}.{uuid.uuid4().hex[:12]}"
    if len(name) > _MAX_TOPIC_LENGTH:
        raise ConfigurationError(f"topic base {base!r} is too long for a Kafka topic name")
    return name


@dataclass(frozen=True)
class PostgresSchema:
    """A fresh schema on the test server, dropped (with its objects) after the module.

    ``dsn`` sets ``search_path`` to the schema, so unqualified tables land in it;
    ``server_settings`` does the same for ``asyncpg.connect``/``create_pool``::

        pool = await asyncpg.create_pool(postgres_schema.dsn)
    """

    name: str
    dsn: str
    server_settings: dict[str, str] = field(default_factory=dict)


def with_query(dsn: str, **params: str) -> str:
    """``dsn`` with query parameters set (asyncpg passes unknown ones as server settings)."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


def with_database(dsn: str, database: str) -> str:
    """``dsn`` pointing at another database on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion on a private event loop in a helper thread.

    Sync fixtures use it so they never touch (or replace) the event loop of the test
    runner in the calling thread.
    """
    result: list[T] = []
    error: list[BaseException] = []

    async def main() -> None:
        result.append(await make())

    def target() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="tracseq-fixture")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError:
        raise MissingDependencyError(
            "asyncpg", extra="postgres", purpose="The postgres_schema fixture"
        ) from None
    return asyncpg


async def execute(dsn: str, statement: str) -> None:
    """Run one SQL statement on a fresh connection."""
    connection = await _asyncpg().connect(dsn, timeout=30)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def delete_keys(redis_url: str, prefix: str) -> int:
    """Delete every key starting with ``prefix`` (SCAN + UNLINK); return how many."""
    try:
        import redis
    except ImportError:
        raise MissingDependencyError(
            "redis", extra="redis", purpose="The redis_prefix fixture"
        ) from None
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + "*"
    deleted = 0
    with redis.Redis.from_url(redis_url, socket_timeout=30) as client:
        batch: list[Any] = []
        for key in client.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += int(client.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(client.unlink(*batch))
    return deleted
