"""The migrations runner against the real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import anyio
import asyncpg
import pytest

from tracseq_kit import ConfigurationError
from tracseq_kit.db import apply_migrations, load_migrations
from tracseq_kit.testing import PostgresSchema

pytestmark = pytest.mark.anyio


def write(folder: Path, name: str, sql: str) -> None:
    (folder / name).write_text(sql)


async def test_ordered_idempotent_and_recorded(
    postgres_schema: PostgresSchema, tmp_path: Path
) -> None:
    write(tmp_path, "002_add_col.sql", "ALTER TABLE samples ADD COLUMN volume_ul numeric;")
    write(tmp_path, "001_create.sql", "CREATE TABLE samples (id text PRIMARY KEY);")
    conn = await asyncpg.connect(postgres_schema.dsn)
    try:
        assert await apply_migrations(conn, tmp_path, namespace="t1") == [
            "001_create.sql",
            "002_add_col.sql",
        ]
        assert await apply_migrations(conn, tmp_path, namespace="t1") == []
        write(tmp_path, "003_index.sql", "CREATE INDEX ON samples (volume_ul);")
        assert await apply_migrations(conn, tmp_path, namespace="t1") == ["003_index.sql"]
        names = await conn.fetch(
            "SELECT name FROM tracseq_migrations WHERE namespace = 't1' ORDER BY name"
        )
        assert [r["name"] for r in names] == ["001_create.sql", "002_add_col.sql", "003_index.sql"]
    finally:
        await conn.close()


async def test_a_failing_migration_is_not_recorded(
    postgres_schema: PostgresSchema, tmp_path: Path
) -> None:
    write(tmp_path, "001_bad.sql", "CREATE TABLE ok_table (id int); SELECT no_such_column;")
    conn = await asyncpg.connect(postgres_schema.dsn)
    try:
        with pytest.raises(asyncpg.PostgresError):
            await apply_migrations(conn, tmp_path, namespace="t2")
        assert await conn.fetchval("SELECT to_regclass('ok_table')") is None  # rolled back
        assert not await conn.fetch("SELECT 1 FROM tracseq_migrations WHERE namespace = 't2'")
    finally:
        await conn.close()


async def test_edited_migration_is_refused(postgres_schema: PostgresSchema, tmp_path: Path) -> None:
    write(tmp_path, "001.sql", "CREATE TABLE edited (id int);")
    conn = await asyncpg.connect(postgres_schema.dsn)
    try:
        await apply_migrations(conn, tmp_path, namespace="t3")
        write(tmp_path, "001.sql", "CREATE TABLE edited (id bigint);")
        with pytest.raises(ConfigurationError, match="changed after it was applied"):
            await apply_migrations(conn, tmp_path, namespace="t3")
    finally:
        await conn.close()


async def test_concurrent_starters_apply_once(
    postgres_schema: PostgresSchema, tmp_path: Path
) -> None:
    write(tmp_path, "001.sql", "CREATE TABLE raced (id int); SELECT pg_sleep(0.2);")
    results: list[list[str]] = []

    async def start() -> None:
        conn = await asyncpg.connect(postgres_schema.dsn)
        try:
            results.append(await apply_migrations(conn, tmp_path, namespace="t4"))
        finally:
            await conn.close()

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(start)
    assert sorted(results) == [[], [], [], ["001.sql"]]


def test_package_folders_and_missing_folders(tmp_path: Path) -> None:
    assert [m.name for m in load_migrations("tracseq_kit.events:sql")][:1] == ["001_outbox.sql"]
    with pytest.raises(ConfigurationError, match=r"no \.sql migrations"):
        load_migrations(tmp_path)
