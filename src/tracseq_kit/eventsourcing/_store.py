"""The contract every event store keeps (PostgreSQL, in memory)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from tracseq_kit.events import CloudEvent, EventRegistry
from tracseq_kit.eventsourcing._types import RecordedEvent, Snapshot, StreamAppend

__all__ = ["EventStore"]


class EventStore(Protocol):
    """An append-only store of event streams with optimistic concurrency.

    Every method takes ``conn=``: a transaction from :meth:`transaction` (or, for the
    PostgreSQL store, any asyncpg connection of the caller), so several calls commit or
    roll back together; without it each call runs in a transaction of its own.
    Appends in one transaction hold the store's append lock until it ends, so two
    transactions never interleave their appends. ``registry`` decodes event data into
    the registered pydantic models; :class:`Repository` and projections register theirs.
    """

    registry: EventRegistry

    def transaction(self) -> AbstractAsyncContextManager[Any]:
        """A transaction to pass as ``conn=``; commits when the block ends without error."""
        ...

    async def append(
        self,
        stream_id: str,
        events: Sequence[CloudEvent[Any]],
        *,
        stream_type: str,
        expected_version: int,
        conn: Any = None,
    ) -> list[RecordedEvent[Any]]:
        """Append ``events`` to ``stream_id`` if its version meets ``expected_version``.

        Returns the recorded events (versions, positions). Raises
        :class:`~tracseq_kit.ConcurrencyError` if the stream is not at the expected
        version and :class:`~tracseq_kit.DuplicateEventError` if an event id is
        already stored; nothing is written then.
        """
        ...

    async def append_many(
        self, appends: Sequence[StreamAppend], *, conn: Any = None
    ) -> list[RecordedEvent[Any]]:
        """Append to several streams at once, all or nothing (one statement in
        PostgreSQL). Raises like :meth:`append` for the first stream that fails."""
        ...

    async def read_stream(
        self,
        stream_id: str,
        *,
        after_version: int = 0,
        to_version: int | None = None,
        conn: Any = None,
    ) -> list[RecordedEvent[Any]]:
        """The events of ``stream_id`` with ``after_version < version <= to_version``,
        in version order; ``[]`` if the stream does not exist."""
        ...

    async def read_streams(
        self, after_versions: Mapping[str, int], *, conn: Any = None
    ) -> dict[str, list[RecordedEvent[Any]]]:
        """The events of several streams, each after its given version, in one call.
        Streams with no such events map to ``[]``."""
        ...

    async def read_all(
        self,
        *,
        after_position: int = 0,
        to_position: int | None = None,
        limit: int = 1000,
        types: Iterable[str] | None = None,
        conn: Any = None,
    ) -> list[RecordedEvent[Any]]:
        """Up to ``limit`` events of all streams in global order, after
        ``after_position`` and up to ``to_position``, only of ``types`` if given.

        Positions are not gapless. Bound the reads by :meth:`head_position` when paging:
        beyond it, an append still in flight may later fill a position already passed.
        """
        ...

    async def head_position(self) -> int:
        """The position up to which the global feed is complete (0 when empty): every
        event at or below it is readable, and none can appear there later. Page through
        :meth:`read_all` up to it to miss nothing appended concurrently."""
        ...

    async def stream_version(self, stream_id: str, *, conn: Any = None) -> int:
        """The version of ``stream_id``: its number of events (0: no stream)."""
        ...

    async def read_snapshots(
        self, stream_ids: Iterable[str], *, conn: Any = None
    ) -> dict[str, Snapshot]:
        """The latest snapshot of each of ``stream_ids`` that has one."""
        ...

    async def write_snapshots(self, snapshots: Sequence[Snapshot], *, conn: Any = None) -> None:
        """Store ``snapshots``, replacing older ones of the same streams."""
        ...
