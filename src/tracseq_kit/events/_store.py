"""Store a batch of rows once per key: COPY, and on a duplicate COPY via a temporary
twin and INSERT ... ON CONFLICT DO NOTHING."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from tracseq_kit._exceptions import ConfigurationError

__all__ = ["store_new_rows"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


async def store_new_rows(
    conn: Any, table: str, rows: Iterable[Sequence[Any]], *, columns: Sequence[str]
) -> int:
    """Insert ``rows`` into ``table`` except those its unique constraints already hold
    (or that repeat within ``rows``); returns how many were new.

    The consumer's way to store events once per partition batch, the table's own key
    (say ``PRIMARY KEY (source, id)``) doing the dedupe instead of a separate inbox:
    first one ``COPY`` straight into ``table`` (the common case, as fast as a bare COPY);
    if it meets a key already there, that COPY is rolled back and the rows go through
    ``COPY`` into a temporary table shaped like ``columns`` of ``table`` (made once per
    connection) and one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``. Runs in a
    transaction on ``conn`` (a savepoint inside the caller's). Raises
    :class:`~tracseq_kit.ConfigurationError` for a table or column name that is not a
    plain identifier; other database errors propagate (asyncpg's).
    """
    from asyncpg.exceptions import UndefinedTableError, UniqueViolationError

    if not _NAME.fullmatch(table) or not all(_COLUMN.fullmatch(c) for c in columns):
        raise ConfigurationError(f"store_new_rows needs plain identifiers, got {table!r}")
    if not columns:
        raise ConfigurationError("store_new_rows needs columns")
    records = rows if isinstance(rows, list) else list(rows)
    if not records:
        return 0
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(table, records=records, columns=list(columns))
        return len(records)
    except UniqueViolationError:
        pass  # a redelivered event: only the new rows go in
    twin = "tracseq_batch_" + table.replace(".", "_")
    names = ", ".join(f'"{c}"' for c in columns)
    move = (  # one statement: empty the twin into the table, skipping known keys
        f'WITH moved AS (DELETE FROM "{twin}" RETURNING {names}) '
        f"INSERT INTO {table} ({names}) SELECT {names} FROM moved ON CONFLICT DO NOTHING"
    )
    for attempt in (1, 2):
        try:
            async with conn.transaction():
                if attempt == 2:  # first use on this connection
                    await conn.execute(
                        f'CREATE TEMP TABLE IF NOT EXISTS "{twin}" AS '
                        f"SELECT {names} FROM {table} WITH NO DATA"
                    )
                await conn.copy_records_to_table(twin, records=records, columns=list(columns))
                status = await conn.execute(move)
            return int(status.split()[-1])
        except UndefinedTableError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
