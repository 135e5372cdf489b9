"""InMemoryEventStore: the event store contract in this process, for unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio

from tracseq_kit._exceptions import ConcurrencyError, ConfigurationError, DuplicateEventError
from tracseq_kit.events import CloudEvent, EventRegistry, InMemoryBroker
from tracseq_kit.eventsourcing._codec import STREAM_VERSION, Row, checked, decode, encode, stamped
from tracseq_kit.eventsourcing._types import (
    RecordedEvent,
    Snapshot,
    StreamAppend,
    expected_label,
    satisfies,
)

__all__ = ["InMemoryEventStore"]


@dataclass(frozen=True, slots=True)
class _Stored:
    row: Row
    version: int
    position: int
    recorded_at: datetime


@dataclass
class _Transaction:
    store: InMemoryEventStore
    events: list[_Stored] = field(default_factory=list)
    published: list[CloudEvent[Any]] = field(default_factory=list)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    locked: bool = False


class InMemoryEventStore:
    """The :class:`EventStore` contract in memory: for unit tests of aggregates and of
    the code around them, no database needed.

    It keeps the PostgreSQL store's rules — versions per stream, expected versions,
    duplicate event ids, all-or-nothing ``append_many``, a global order, transactions
    that hold the append lock until they end — and stores data as JSON text, decoding it
    through ``registry`` on every read, so a payload that would not survive the real
    store fails here too. The same contract tests run against both stores.

    With ``broker`` and ``topic``, committed events are published to that
    :class:`~tracseq_kit.events.InMemoryBroker` topic in order, as the outbox relay
    would publish them to Kafka. ``clock`` gives ``recorded_at`` (default: now, UTC).
    """

    def __init__(
        self,
        *,
        registry: EventRegistry | None = None,
        topic: str | None = None,
        broker: InMemoryBroker | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if (topic is None) != (broker is None):
            raise ConfigurationError("pass both topic and broker to publish, or neither")
        self.registry = registry if registry is not None else EventRegistry()
        self._topic = topic
        self._broker = broker
        self._clock = clock or (lambda: datetime.now(UTC))
        self._events: list[_Stored] = []
        self._streams: dict[str, list[_Stored]] = {}
        self._ids: set[str] = set()
        self._snapshots: dict[str, Snapshot] = {}
        self._next_position = 1
        self._lock = anyio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """A transaction for ``conn=``: its appends become visible to others, and are
        published, when the block ends without error; an error discards them."""
        tx = _Transaction(self)
        try:
            yield tx
            self._commit(tx)
            if self._broker is not None and self._topic is not None:
                for event in tx.published:
                    await self._broker.publish(self._topic, event)
        finally:
            if tx.locked:
                self._lock.release()

    @asynccontextmanager
    async def _within(self, conn: Any) -> AsyncIterator[_Transaction]:
        if conn is None:
            async with self.transaction() as tx:
                yield tx
        else:
            yield self._transaction_of(conn)

    def _transaction_of(self, conn: Any) -> _Transaction:
        if not isinstance(conn, _Transaction) or conn.store is not self:
            raise ConfigurationError(
                "conn= must be a transaction of this store (async with store.transaction())"
            )
        return conn

    def _commit(self, tx: _Transaction) -> None:
        for stored in tx.events:
            self._events.append(stored)
            self._streams.setdefault(stored.row.stream_id, []).append(stored)
            self._ids.add(stored.row.event_id)
        self._snapshots.update(tx.snapshots)

    def _stream(self, stream_id: str, tx: _Transaction | None) -> list[_Stored]:
        committed = self._streams.get(stream_id, [])
        if tx is None or not tx.events:
            return committed
        return committed + [s for s in tx.events if s.row.stream_id == stream_id]

    def _decode(self, stored: _Stored) -> RecordedEvent[Any]:
        r = stored.row
        return decode(
            self.registry,
            stream_id=r.stream_id,
            stream_type=r.stream_type,
            version=stored.version,
            position=stored.position,
            recorded_at=stored.recorded_at,
            event_id=r.event_id,
            type=r.type,
            source=r.source,
            subject=r.subject,
            time=r.time,
            dataschema=r.dataschema,
            extensions=r.extensions,
            data=r.data,
        )

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
        """See :meth:`EventStore.append_many`."""
        appends = checked(appends)
        async with self._within(conn) as tx:
            if not tx.locked:
                await self._lock.acquire()
                tx.locked = True
            current = {a.stream_id: len(self._stream(a.stream_id, tx)) for a in appends}
            for a in appends:
                if not satisfies(a.expected_version, current[a.stream_id]):
                    raise ConcurrencyError(
                        a.stream_id,
                        expected=expected_label(a.expected_version),
                        actual=current[a.stream_id],
                    )
            rows: list[tuple[StreamAppend, CloudEvent[Any], int, Row]] = []
            for a in appends:
                for k, event in enumerate(a.events, start=1):
                    version = current[a.stream_id] + k
                    if event.extensions.get(STREAM_VERSION) != version:
                        event = stamped(event, version)
                    row = encode(a.stream_id, version - k, k, a.stream_type, event)
                    rows.append((a, event, version, row))
            taken = {s.row.event_id for s in tx.events}
            for *_, row in rows:
                if row.event_id in self._ids or row.event_id in taken:
                    raise DuplicateEventError(row.event_id)
                taken.add(row.event_id)
            now = self._clock()
            recorded: list[RecordedEvent[Any]] = []
            for a, event, version, row in rows:
                stored = _Stored(row, version, self._next_position, now)
                self._next_position += 1
                tx.events.append(stored)
                tx.published.append(event)
                recorded.append(
                    RecordedEvent(event, a.stream_id, a.stream_type, version, stored.position, now)
                )
            return recorded

    async def read_stream(
        self,
        stream_id: str,
        *,
        after_version: int = 0,
        to_version: int | None = None,
        conn: Any = None,
    ) -> list[RecordedEvent[Any]]:
        """See :meth:`EventStore.read_stream`."""
        tx = self._transaction_of(conn) if conn is not None else None
        return [
            self._decode(s)
            for s in self._stream(stream_id, tx)
            if s.version > after_version and (to_version is None or s.version <= to_version)
        ]

    async def read_streams(
        self, after_versions: Mapping[str, int], *, conn: Any = None
    ) -> dict[str, list[RecordedEvent[Any]]]:
        """See :meth:`EventStore.read_streams`."""
        return {
            stream_id: await self.read_stream(stream_id, after_version=after, conn=conn)
            for stream_id, after in after_versions.items()
        }

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
        tx = self._transaction_of(conn) if conn is not None else None
        wanted = set(types) if types is not None else None
        out: list[RecordedEvent[Any]] = []
        for s in self._events + (tx.events if tx is not None else []):
            if len(out) >= limit or (to_position is not None and s.position > to_position):
                break
            if s.position > after_position and (wanted is None or s.row.type in wanted):
                out.append(self._decode(s))
        return out

    async def head_position(self) -> int:
        """See :meth:`EventStore.head_position` (committed events only)."""
        return self._events[-1].position if self._events else 0

    async def stream_version(self, stream_id: str, *, conn: Any = None) -> int:
        """See :meth:`EventStore.stream_version`."""
        tx = self._transaction_of(conn) if conn is not None else None
        return len(self._stream(stream_id, tx))

    async def read_snapshots(
        self, stream_ids: Iterable[str], *, conn: Any = None
    ) -> dict[str, Snapshot]:
        """See :meth:`EventStore.read_snapshots`."""
        tx = self._transaction_of(conn) if conn is not None else None
        found = {**self._snapshots, **(tx.snapshots if tx is not None else {})}
        return {i: found[i] for i in stream_ids if i in found}

    async def write_snapshots(self, snapshots: Sequence[Snapshot], *, conn: Any = None) -> None:
        """See :meth:`EventStore.write_snapshots`."""
        async with self._within(conn) as tx:
            for snapshot in snapshots:
                older = tx.snapshots.get(snapshot.stream_id) or self._snapshots.get(
                    snapshot.stream_id
                )
                if older is None or older.version <= snapshot.version:
                    tx.snapshots[snapshot.stream_id] = snapshot
