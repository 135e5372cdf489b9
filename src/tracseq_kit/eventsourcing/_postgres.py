"""PostgresEventStore: streams in PostgreSQL (asyncpg), appended through the outbox."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from tracseq_kit._exceptions import (
    ConcurrencyError,
    ConfigurationError,
    DependencyUnavailableError,
    DuplicateEventError,
)
from tracseq_kit.db import apply_migrations
from tracseq_kit.events import CloudEvent, EventRegistry, Outbox
from tracseq_kit.events import migrate as migrate_outbox
from tracseq_kit.eventsourcing._codec import STREAM_VERSION, Row, checked, decode, encode, stamped
from tracseq_kit.eventsourcing._types import (
    RecordedEvent,
    Snapshot,
    StreamAppend,
    expected_label,
)

if TYPE_CHECKING:
    from tracseq_kit.eventsourcing._projection import Projection

__all__ = ["PostgresEventStore", "migrate"]

CHANNEL = "tracseq_eventsourcing"
"""The ``NOTIFY`` channel of appends (catch-up projection runners listen on it)."""

_COLUMNS = (
    "stream_id, stream_type, version, position, recorded_at, event_id, type, source, "
    "subject, time, dataschema, extensions::text, data::text"
)
_APPEND = """SELECT o_first, o_bases, o_recorded FROM tracseq_es_append(
    $1::text[], $2::integer[], $3::integer[], $4::text[], $5::integer[], $6::integer[],
    $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[],
    $13::text[], $14::text[], $15::text[], $16::boolean)"""
_READ_STREAM = f"""SELECT {_COLUMNS} FROM tracseq_es_events
WHERE stream_id = $1 AND version > $2 AND ($3::integer IS NULL OR version <= $3)
ORDER BY version"""
_READ_STREAMS = f"""SELECT {_COLUMNS} FROM tracseq_es_events e
JOIN unnest($1::text[], $2::integer[]) AS s(id, after) ON e.stream_id = s.id
WHERE e.version > s.after
ORDER BY e.stream_id, e.version"""
_READ_ALL = f"""SELECT {_COLUMNS} FROM tracseq_es_events
WHERE position > $1 AND ($2::bigint IS NULL OR position <= $2)
  AND ($3::text[] IS NULL OR type = ANY($3::text[]))
ORDER BY position
LIMIT $4"""
_WRITE_SNAPSHOTS = """INSERT INTO tracseq_es_snapshots AS s
    (stream_id, stream_type, version, schema_version, state)
SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::integer[], $5::jsonb[])
ON CONFLICT (stream_id) DO UPDATE SET
    stream_type = EXCLUDED.stream_type, version = EXCLUDED.version,
    schema_version = EXCLUDED.schema_version, state = EXCLUDED.state, taken_at = now()
WHERE s.version <= EXCLUDED.version"""
_DUPLICATE_KEY = re.compile(r"\(event_id\)=\((?P<id>.*)\) already exists")
_TAKEN_VERSION = re.compile(
    r"\(stream_id, version\)=\((?P<id>.*), (?P<version>\d+)\) already exists"
)


async def migrate(conn: Any) -> list[str]:
    """Create or upgrade the event store's tables, and the outbox's it writes to.

    Idempotent and safe to race (see :func:`tracseq_kit.db.apply_migrations`); returns
    the names of the migrations applied now (the outbox's included).
    """
    applied = await migrate_outbox(conn)
    applied += await apply_migrations(
        conn,
        files("tracseq_kit.eventsourcing").joinpath("sql"),
        namespace="tracseq_kit.eventsourcing",
    )
    return applied


class PostgresEventStore:
    """The :class:`EventStore` on PostgreSQL, through asyncpg.

    ``pool`` is an asyncpg pool (calls without ``conn=`` take a connection from it).
    Every append also writes its events to the transactional outbox for ``topic``, in
    the same transaction and in stream order, keyed by stream id, so Kafka sees each
    aggregate's events in order (``topic=None``: the events stay in the store).
    ``outbox`` sets the encoding (default: :class:`~tracseq_kit.events.Outbox()`).
    ``inline`` projections are brought up to date inside every appending transaction
    (read models that are never stale); see :class:`Projection`.

    An append (one or many streams) is one statement, ``tracseq_es_append()``, holding
    the append lock until its transaction ends: shared among appends with exact
    expected versions (they run concurrently; the unique index on stream and version
    decides between two appends of the same version), exclusive for ``ANY`` /
    ``STREAM_EXISTS`` appends and for stores with inline projections. Readers of the
    global feed take it exclusively for an instant (:meth:`head_position`) to learn how
    far the feed is complete. Keep appends at the end of a transaction, and do not mix
    exact and ``ANY`` appends in one transaction: taking the lock exclusively while
    holding it shared can deadlock with another transaction doing the same (PostgreSQL
    then aborts one of them). Create the
    tables with :func:`migrate`; without them calls raise
    :class:`~tracseq_kit.ConfigurationError`.
    """

    def __init__(
        self,
        pool: Any,
        *,
        topic: str | None,
        outbox: Outbox | None = None,
        registry: EventRegistry | None = None,
        inline: Sequence[Projection] = (),
    ) -> None:
        from tracseq_kit.eventsourcing._projection import register_projections

        if outbox is not None and topic is None:
            raise ConfigurationError("an outbox needs a topic: pass topic= too")
        self.registry = registry if registry is not None else EventRegistry()
        self._pool = pool
        self._topic = topic
        self._outbox = outbox if outbox is not None else (Outbox() if topic else None)
        self.inline: tuple[Projection, ...] = tuple(inline)
        register_projections(self.registry, self.inline)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """A pooled connection inside a transaction, for ``conn=``."""
        async with self._pool.acquire() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def _connection(self, conn: Any = None) -> AsyncIterator[Any]:
        """``conn`` itself, or a connection from the pool for the block."""
        if conn is not None:
            yield conn
        else:
            async with self._pool.acquire() as acquired:
                yield acquired

    @asynccontextmanager
    async def _writing(self, conn: Any) -> AsyncIterator[Any]:
        if conn is None:
            async with self.transaction() as c:
                yield c
        elif conn.is_in_transaction():
            yield conn
        else:  # the lock and the outbox rows must share one transaction with the events
            async with conn.transaction():
                yield conn

    async def append(
        self,
        stream_id: str,
        events: Sequence[CloudEvent[Any]],
        *,
        stream_type: str,
        expected_version: int,
        conn: Any = None,
    ) -> list[RecordedEvent[Any]]:
        """See :meth:`EventStore.append`."""
        return await self.append_many(
            [StreamAppend(stream_id, events, stream_type, expected_version)], conn=conn
        )

    async def append_many(
        self, appends: Sequence[StreamAppend], *, conn: Any = None
    ) -> list[RecordedEvent[Any]]:
        """See :meth:`EventStore.append_many`: one statement for all streams, then one
        outbox insert for all events, then the inline projections."""
        appends = checked(appends)
        if not appends:
            return []
        rows, prepared = _rows(appends)
        columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[]] * 12
        # Versions must be read (not known) for "any" / "stream exists": such appends,
        # and appends that run inline projections, take the append lock exclusively.
        known = all(a.expected_version >= 0 for a in appends)
        exclusive = bool(self.inline) or not known
        async with self._writing(conn) as c:
            if known and self._outbox is not None and self._topic is not None and rows:
                # Before the append: the lock is then held for one statement and commit.
                await self._outbox.add_many(c, self._topic, [e for es in prepared for e in es])
            try:
                first, bases, recorded_at = await c.fetchrow(
                    _APPEND,
                    [a.stream_id for a in appends],
                    [int(a.expected_version) for a in appends],
                    [len(a.events) for a in appends],
                    *columns,
                    exclusive,
                )
            except Exception as exc:
                _raise_mapped(exc)
                raise
            recorded = _recorded(appends, prepared, first, bases, recorded_at)
            if not known and self._outbox is not None and self._topic is not None and recorded:
                await self._outbox.add_many(c, self._topic, [r.event for r in recorded])
            if self.inline and recorded:
                from tracseq_kit.eventsourcing._projection import project_inline

                for projection in self.inline:
                    await project_inline(c, self, projection, recorded)
        return recorded

    def _decode(self, r: Any) -> RecordedEvent[Any]:
        return decode(
            self.registry,
            stream_id=r[0],
            stream_type=r[1],
            version=r[2],
            position=r[3],
            recorded_at=r[4],
            event_id=r[5],
            type=r[6],
            source=r[7],
            subject=r[8],
            time=r[9],
            dataschema=r[10],
            extensions=r[11],
            data=r[12],
        )

    async def _fetch(self, conn: Any, query: str, *args: Any) -> list[Any]:
        async with self._connection(conn) as c:
            try:
                return list(await c.fetch(query, *args))
            except Exception as exc:
                _raise_mapped(exc)
                raise

    async def read_stream(
        self,
        stream_id: str,
        *,
        after_version: int = 0,
        to_version: int | None = None,
        conn: Any = None,
    ) -> list[RecordedEvent[Any]]:
        """See :meth:`EventStore.read_stream`."""
        rows = await self._fetch(conn, _READ_STREAM, stream_id, after_version, to_version)
        return [self._decode(r) for r in rows]

    async def read_streams(
        self, after_versions: Mapping[str, int], *, conn: Any = None
    ) -> dict[str, list[RecordedEvent[Any]]]:
        """See :meth:`EventStore.read_streams`."""
        found: dict[str, list[RecordedEvent[Any]]] = {s: [] for s in after_versions}
        if not found:
            return found
        rows = await self._fetch(
            conn, _READ_STREAMS, list(after_versions), list(after_versions.values())
        )
        for r in rows:
            found[r[0]].append(self._decode(r))
        return found

    async def read_all(
        self,
        *,
        after_position: int = 0,
        to_position: int | None = None,
        limit: int = 1000,
        types: Iterable[str] | None = None,
        conn: Any = None,
    ) -> list[RecordedEvent[Any]]:
        """See :meth:`EventStore.read_all`."""
        wanted = list(types) if types is not None else None
        rows = await self._fetch(conn, _READ_ALL, after_position, to_position, wanted, limit)
        return [self._decode(r) for r in rows]

    async def head_position(self, *, max_wait: float = 10.0) -> int:
        """See :meth:`EventStore.head_position`.

        Takes the append lock exclusively for an instant (on a connection of its own):
        appends in flight finish first, new ones wait meanwhile. Raises
        :class:`~tracseq_kit.DependencyUnavailableError` if in-flight appends do not
        finish within ``max_wait`` seconds (a transaction that appended and stays open).
        """
        head = await self._safe_head(max_wait)
        if head is None:
            raise DependencyUnavailableError(
                f"appends in flight did not finish within {max_wait}s; an appending "
                "transaction is held open (keep appends at the end of transactions)"
            )
        return head

    async def _safe_head(self, max_wait: float) -> int | None:
        async with self._pool.acquire() as c:
            try:
                head = await c.fetchval(
                    "SELECT tracseq_es_safe_head($1)", max(1, int(max_wait * 1000))
                )
            except Exception as exc:
                _raise_mapped(exc)
                raise
        return None if head is None else int(head)

    async def stream_version(self, stream_id: str, *, conn: Any = None) -> int:
        """See :meth:`EventStore.stream_version`."""
        rows = await self._fetch(
            conn,
            "SELECT coalesce(max(version), 0) FROM tracseq_es_events WHERE stream_id = $1",
            stream_id,
        )
        return int(rows[0][0])

    async def read_snapshots(
        self, stream_ids: Iterable[str], *, conn: Any = None
    ) -> dict[str, Snapshot]:
        """See :meth:`EventStore.read_snapshots`."""
        rows = await self._fetch(
            conn,
            "SELECT stream_id, stream_type, version, schema_version, state::text"
            " FROM tracseq_es_snapshots WHERE stream_id = ANY($1::text[])",
            list(stream_ids),
        )
        return {r[0]: Snapshot(r[0], r[1], r[2], r[3], r[4]) for r in rows}

    async def write_snapshots(self, snapshots: Sequence[Snapshot], *, conn: Any = None) -> None:
        """See :meth:`EventStore.write_snapshots`."""
        if not snapshots:
            return
        async with self._connection(conn) as c:
            await c.execute(
                _WRITE_SNAPSHOTS,
                [s.stream_id for s in snapshots],
                [s.stream_type for s in snapshots],
                [s.version for s in snapshots],
                [s.schema_version for s in snapshots],
                [s.state for s in snapshots],
            )

    async def checkpoints(self, *, conn: Any = None) -> dict[str, int]:
        """Each projection's checkpoint: the position up to which it has applied events."""
        rows = await self._fetch(conn, "SELECT projection, position FROM tracseq_es_checkpoints")
        return {r[0]: int(r[1]) for r in rows}


def _raise_mapped(exc: Exception) -> None:
    """Raise the kit's error for an asyncpg error of the event store, if it has one."""
    mapped = _mapped(exc)
    if mapped is not None:
        raise mapped from exc


def _mapped(exc: Exception) -> Exception | None:
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate == "TQ409":
        detail = json.loads(getattr(exc, "detail", None) or "{}")
        return ConcurrencyError(
            str(detail.get("stream_id")),
            expected=expected_label(int(detail.get("expected", 0))),
            actual=int(detail.get("actual", 0)),
        )
    if sqlstate == "23505":
        constraint = getattr(exc, "constraint_name", None)
        detail = getattr(exc, "detail", None) or ""
        if constraint == "tracseq_es_events_event_id":
            found = _DUPLICATE_KEY.search(detail)
            return DuplicateEventError(found["id"] if found else "?")
        if constraint == "tracseq_es_events_stream_version":
            # A concurrent append of the same version committed while this one waited.
            taken = _TAKEN_VERSION.search(detail)
            if taken:
                version = int(taken["version"])
                return ConcurrencyError(
                    taken["id"], expected=expected_label(version - 1), actual=version
                )
    if sqlstate in ("42883", "42P01"):  # undefined function / table
        return ConfigurationError(
            f"the event store's tables are missing ({exc}); create them with "
            "`await tracseq_kit.eventsourcing.migrate(conn)`"
        )
    return None


def _rows(appends: Sequence[StreamAppend]) -> tuple[list[Row], list[list[CloudEvent[Any]]]]:
    """The rows to insert, and each append's events stamped with their versions (when
    the expected version is known)."""
    rows: list[Row] = []
    prepared: list[list[CloudEvent[Any]]] = []
    for a in appends:
        base = int(a.expected_version) if a.expected_version >= 0 else None
        events = list(a.events)
        for k, event in enumerate(events, start=1):
            if base is not None and event.extensions.get(STREAM_VERSION) != base + k:
                event = events[k - 1] = stamped(event, base + k)
            rows.append(encode(a.stream_id, base, k, a.stream_type, event))
        prepared.append(events)
    return rows, prepared


def _recorded(
    appends: Sequence[StreamAppend],
    prepared: list[list[CloudEvent[Any]]],
    first: int,
    bases: Sequence[int] | None,
    recorded_at: Any,
) -> list[RecordedEvent[Any]]:
    """The appended events as recorded: versions from the database where they were read."""
    recorded: list[RecordedEvent[Any]] = []
    position = first
    for i, a in enumerate(appends):
        base = int(a.expected_version) if bases is None else bases[i]
        for k, event in enumerate(prepared[i], start=1):
            if event.extensions.get(STREAM_VERSION) != base + k:
                event = stamped(event, base + k)
            recorded.append(
                RecordedEvent(event, a.stream_id, a.stream_type, base + k, position, recorded_at)
            )
            position += 1
    return recorded
