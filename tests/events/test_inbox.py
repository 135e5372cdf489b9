"""Inbox on the real PostgreSQL: identity (source, id), batch claims, retention, and the
migration of an inbox table from before the source column."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from events_support import migrated_pool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracseq_kit.db import apply_migrations
from tracseq_kit.events import CloudEvent, Inbox, migrate
from tracseq_kit.testing import PostgresSchema

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pool(postgres_schema: PostgresSchema) -> AsyncIterator[Any]:
    async with migrated_pool(postgres_schema.dsn) as p:
        yield p


def event(source: str, event_id: str) -> CloudEvent[Any]:
    return CloudEvent[Any](id=event_id, source=source, type="tracseq.test")


async def test_the_same_id_from_two_sources_is_two_events(pool: Any) -> None:
    inbox = Inbox(pool, consumer="g")
    effects: list[str] = []

    async def effect(conn: Any) -> None:
        effects.append("x")

    assert await inbox.process("/robot-1", "42", effect)
    assert await inbox.process("/robot-2", "42", effect)  # another producer's 42
    assert not await inbox.process("/robot-1", "42", effect)
    assert effects == ["x", "x"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_purge_deletes_old_entries_of_its_consumer_only_when_due(pool: Any) -> None:
    clock = Clock()
    inbox = Inbox(
        pool, consumer="old", retention=timedelta(hours=1), purge_interval=60, clock=clock
    )
    other = Inbox(pool, consumer="other", retention=timedelta(0))
    async with pool.acquire() as conn, conn.transaction():
        await inbox.claim(conn, [event("/s", "fresh"), event("/s", "stale")])
        await other.claim(conn, [event("/s", "stale")])
    await pool.execute(
        "UPDATE tracseq_inbox SET handled_at = now() - interval '2 hours' WHERE event_id = 'stale'"
    )
    assert await inbox.purge_if_due() is None  # not yet: the clock has not moved
    clock.now = 61.0
    assert await inbox.purge_if_due() == 1
    assert await inbox.purge_if_due() is None  # the next one is 60 s later
    rows = await pool.fetch("SELECT consumer, event_id FROM tracseq_inbox ORDER BY consumer")
    assert [(r["consumer"], r["event_id"]) for r in rows] == [("old", "fresh"), ("other", "stale")]


identities = st.tuples(st.sampled_from(["/a", "/b", "/c"]), st.sampled_from(["1", "2", "3", "4"]))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.lists(identities, max_size=6), max_size=5), rolled_back=st.integers(0, 4)
)
async def test_claim_says_new_exactly_once_per_identity(
    pool: Any, batches: list[list[tuple[str, str]]], rolled_back: int
) -> None:
    inbox = Inbox(pool, consumer=f"prop-{uuid.uuid4().hex[:8]}")
    seen: set[tuple[str, str]] = set()
    for n, batch in enumerate(batches):
        expected = []
        mine = set(seen)
        for identity in batch:
            expected.append(identity not in mine)
            mine.add(identity)
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            got = await inbox.claim(conn, [event(s, i) for s, i in batch])
            if n == rolled_back:
                await tx.rollback()  # nothing of this batch is remembered
            else:
                await tx.commit()
                seen = mine
        assert got == expected


async def test_the_migration_keeps_old_entries_and_still_dedupes_them(
    postgres_dsn: str, tmp_path: Path
) -> None:
    schema = f"inbox_mig_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        old = tmp_path / "sql"
        old.mkdir()
        with as_file(files("tracseq_kit.events").joinpath("sql")) as shipped:
            for name in ("001_outbox.sql", "002_inbox.sql"):  # the inbox as first shipped
                shutil.copy(Path(shipped) / name, old / name)
        await apply_migrations(conn, old, namespace="tracseq_kit.events")
        await conn.execute("INSERT INTO tracseq_inbox (consumer, event_id) VALUES ('g', 'e-1')")
        assert await migrate(conn) == ["003_inbox_source.sql", "004_outbox_drop_key_index.sql"]
        pool = await asyncpg.create_pool(
            postgres_dsn, min_size=1, max_size=2, server_settings={"search_path": schema}
        )
        try:
            inbox = Inbox(pool, consumer="g")
            async with pool.acquire() as c, c.transaction():
                assert await inbox.claim(c, [event("/any", "e-1"), event("/any", "e-2")]) == [
                    False,  # handled before the migration, from whatever source
                    True,
                ]
        finally:
            await pool.close()
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
