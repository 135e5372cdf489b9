"""store_new_rows on the real PostgreSQL: one COPY when every row is new, the table's own
key skipping rows it already holds (and repeats within a batch) otherwise."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from events_support import migrated_pool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracseq_kit import ConfigurationError
from tracseq_kit.events import store_new_rows
from tracseq_kit.testing import PostgresSchema

pytestmark = pytest.mark.anyio
COLUMNS = ["source", "id", "n"]


@pytest.fixture
async def pool(postgres_schema: PostgresSchema) -> AsyncIterator[Any]:
    async with migrated_pool(postgres_schema.dsn) as p:
        yield p


async def table(pool: Any) -> str:
    name = f"stored_{uuid.uuid4().hex[:8]}"
    await pool.execute(
        f"CREATE TABLE {name} (seq bigserial, source text, id text, n int, "
        "PRIMARY KEY (source, id))"
    )
    return name


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(
        st.lists(st.tuples(st.sampled_from(["/a", "/b"]), st.sampled_from("123456")), max_size=8),
        max_size=4,
    )
)
async def test_every_key_is_stored_once_and_the_count_says_how_many_were_new(
    pool: Any, batches: list[list[tuple[str, str]]]
) -> None:
    name = await table(pool)
    seen: dict[tuple[str, str], int] = {}
    n = 0
    async with pool.acquire() as conn:
        for batch in batches:
            rows = []
            for source, event_id in batch:
                rows.append((source, event_id, n))
                n += 1
            fresh = {}
            for source, event_id, value in rows:
                if (source, event_id) not in seen and (source, event_id) not in fresh:
                    fresh[source, event_id] = value
            assert await store_new_rows(conn, name, rows, columns=COLUMNS) == len(fresh)
            seen.update(fresh)
        got = await conn.fetch(f"SELECT source, id, n FROM {name}")
    assert {(r["source"], r["id"]): r["n"] for r in got} == seen  # the first one wins


async def test_it_joins_the_callers_transaction(pool: Any) -> None:
    name = await table(pool)
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await store_new_rows(conn, name, [("/a", "1", 1)], columns=COLUMNS)
                await store_new_rows(conn, name, [("/a", "1", 2), ("/a", "2", 3)], columns=COLUMNS)
                raise RuntimeError("the handler failed after storing")
        assert await conn.fetchval(f"SELECT count(*) FROM {name}") == 0


async def test_names_must_be_identifiers(pool: Any) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(ConfigurationError):
            await store_new_rows(conn, "t; DROP TABLE x", [], columns=COLUMNS)
        with pytest.raises(ConfigurationError):
            await store_new_rows(conn, "t", [], columns=["a b"])
