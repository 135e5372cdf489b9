from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from eventsourcing_support import migrated_pool

from tracseq_kit.eventsourcing import EventStore, InMemoryEventStore, PostgresEventStore
from tracseq_kit.testing import PostgresSchema


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # asyncpg


@pytest.fixture
async def pool(postgres_schema: PostgresSchema) -> AsyncIterator[Any]:
    async with migrated_pool(postgres_schema.dsn) as p:
        yield p


@pytest.fixture(params=["memory", "postgres"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[EventStore]:
    """The same contract on both stores: each test using it runs twice."""
    if request.param == "memory":
        yield InMemoryEventStore()
        return
    schema: PostgresSchema = request.getfixturevalue("postgres_schema")
    async with migrated_pool(schema.dsn) as p:
        yield PostgresEventStore(p, topic="tracseq.samples")
