"""Ordered, idempotent, recorded SQL migrations on asyncpg."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from tracseq_kit._exceptions import ConfigurationError

__all__ = ["Migration", "apply_migrations", "load_migrations"]

logger = logging.getLogger("tracseq_kit.db")

_TABLE = "tracseq_migrations"


@dataclass(frozen=True, slots=True)
class Migration:
    """One ``.sql`` file: applied once, in name order, inside its own transaction."""

    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text, recorded to detect edits after applying."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(source: Traversable | Path | str) -> list[Migration]:
    """The ``*.sql`` files of a folder, sorted by name.

    ``source`` is a folder path or an ``importlib.resources`` traversable, or a string
    ``"package:folder"`` naming a folder inside an installed package.
    """
    folder: Traversable | Path
    if isinstance(source, str):
        if ":" in source and not Path(source).exists():
            package, _, name = source.partition(":")
            folder = files(package).joinpath(name)
        else:
            folder = Path(source)
    else:
        folder = source
    found = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda e: e.name,
    )
    if not found:
        raise ConfigurationError(f"no .sql migrations found in {source}")
    return [Migration(entry.name, entry.read_text(encoding="utf-8")) for entry in found]


async def apply_migrations(
    conn: Any, source: Traversable | Path | str, *, namespace: str = "default"
) -> list[str]:
    """Apply the migrations of ``source`` not yet applied; return their names.

    Each runs in its own transaction and is recorded in ``tracseq_migrations``
    (``namespace`` separates several sets in one database, e.g. the kit's outbox and a
    service's own tables). A PostgreSQL advisory lock makes concurrent starters wait
    for each other, so each migration runs exactly once. Raises
    :class:`~tracseq_kit.ConfigurationError` if an applied migration's file changed.
    """
    migrations = load_migrations(source)
    await conn.execute(
        f"""CREATE TABLE IF NOT EXISTS {_TABLE} (
            namespace text NOT NULL,
            name text NOT NULL,
            checksum text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (namespace, name))"""
    )
    lock = int.from_bytes(
        hashlib.sha256(f"{_TABLE}:{namespace}".encode()).digest()[:8], "big", signed=True
    )
    await conn.execute("SELECT pg_advisory_lock($1)", lock)
    try:
        rows = await conn.fetch(
            f"SELECT name, checksum FROM {_TABLE} WHERE namespace = $1", namespace
        )
        done = {r["name"]: r["checksum"] for r in rows}
        applied: list[str] = []
        for m in migrations:
            if m.name in done:
                if done[m.name] != m.checksum:
                    raise ConfigurationError(
                        f"migration {namespace}/{m.name} changed after it was applied; "
                        "add a new migration instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    f"INSERT INTO {_TABLE} (namespace, name, checksum) VALUES ($1, $2, $3)",
                    namespace,
                    m.name,
                    m.checksum,
                )
            logger.info("applied migration %s/%s", namespace, m.name)
            applied.append(m.name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock)
