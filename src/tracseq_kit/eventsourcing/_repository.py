"""Repository: load aggregates from their streams (and snapshots), save their events."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from tracseq_kit._exceptions import AggregateNotFoundError, ConfigurationError
from tracseq_kit.events import CloudEvent
from tracseq_kit.eventsourcing._aggregate import Aggregate
from tracseq_kit.eventsourcing._codec import STREAM_VERSION
from tracseq_kit.eventsourcing._store import EventStore
from tracseq_kit.eventsourcing._types import RecordedEvent, Snapshot, StreamAppend

__all__ = ["Repository"]

A = TypeVar("A", bound=Aggregate[Any])


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Repository(Generic[A]):
    """Loads and saves one kind of :class:`Aggregate` in an :class:`EventStore`.

    ``source`` is the CloudEvents source of the events it writes (e.g.
    ``"/sample-service"``), ``clock`` gives their ``time`` (default: now, UTC). Each
    event gets the aggregate id as subject (its Kafka key) and its version in the
    ``streamversion`` extension. With ``snapshot_every=N`` the state is snapshotted
    whenever a save crosses a multiple of N events, and loads start from the latest
    snapshot. The aggregate's payload models are registered in the store's registry
    (a type already registered with another model is a ConfigurationError).
    """

    def __init__(
        self,
        aggregate: type[A],
        store: EventStore,
        *,
        source: str,
        clock: Callable[[], datetime] | None = None,
        snapshot_every: int | None = None,
    ) -> None:
        if not aggregate.stream_type:
            raise ConfigurationError(
                f'{aggregate.__name__} needs a stream_type (e.g. stream_type = "sample")'
            )
        if not source:
            raise ConfigurationError("source must not be empty (e.g. '/sample-service')")
        if snapshot_every is not None and snapshot_every < 1:
            raise ConfigurationError("snapshot_every must be at least 1 (or None)")
        for event_type, model in aggregate.event_types().items():
            store.registry.register(event_type, model)
        self.aggregate = aggregate
        self.store = store
        self._source = source
        self._clock = clock or _utcnow
        self._every = snapshot_every

    def _within(self, conn: Any) -> AbstractAsyncContextManager[Any]:
        return self.store.transaction() if conn is None else nullcontext(conn)

    async def load(self, aggregate_id: str, *, version: int | None = None, conn: Any = None) -> A:
        """The aggregate as of its latest event (or as of ``version``).

        Raises :class:`~tracseq_kit.AggregateNotFoundError` if its stream does not
        exist or holds another kind of aggregate.
        """
        snapshot = None
        if self._every is not None:
            found = await self.store.read_snapshots([aggregate_id], conn=conn)
            snapshot = found.get(aggregate_id)
            if snapshot is not None and version is not None and snapshot.version > version:
                snapshot = None
        aggregate = self._from_snapshot(aggregate_id, snapshot)
        events = await self.store.read_stream(
            aggregate_id, after_version=aggregate.version, to_version=version, conn=conn
        )
        return self._replayed(aggregate, events)

    async def load_many(self, aggregate_ids: Iterable[str], *, conn: Any = None) -> dict[str, A]:
        """Several aggregates in two reads (snapshots, events), e.g. a pool's parents.

        Raises :class:`~tracseq_kit.AggregateNotFoundError` for the first id that has
        no stream.
        """
        ids = list(dict.fromkeys(aggregate_ids))
        snapshots = (
            await self.store.read_snapshots(ids, conn=conn) if self._every is not None else {}
        )
        aggregates = {i: self._from_snapshot(i, snapshots.get(i)) for i in ids}
        events = await self.store.read_streams(
            {i: a.version for i, a in aggregates.items()}, conn=conn
        )
        return {i: self._replayed(a, events[i]) for i, a in aggregates.items()}

    def _from_snapshot(self, aggregate_id: str, snapshot: Snapshot | None) -> A:
        aggregate = self.aggregate(aggregate_id)
        if (
            snapshot is None
            or snapshot.schema_version != self.aggregate.snapshot_version
            or snapshot.stream_type != self.aggregate.stream_type
            or aggregate.state_model is None
        ):
            return aggregate
        try:
            state = aggregate.state_model.model_validate_json(snapshot.state)
        except ValidationError:
            return aggregate  # an incompatible snapshot is only a missed shortcut
        aggregate.state = state
        aggregate.version = snapshot.version
        return aggregate

    def _replayed(self, aggregate: A, events: Sequence[RecordedEvent[Any]]) -> A:
        kind = self.aggregate.stream_type
        if aggregate.version == 0 and not events:
            raise AggregateNotFoundError(kind, aggregate.id)
        if events and events[0].stream_type != kind:
            error = AggregateNotFoundError(kind, aggregate.id)
            error.add_note(f"stream {aggregate.id!r} holds {events[0].stream_type!r} events")
            raise error
        for recorded in events:
            aggregate._replay(recorded.type, recorded.data)
        return aggregate

    async def save(self, aggregate: A, *, conn: Any = None) -> list[RecordedEvent[Any]]:
        """Append the aggregate's pending events, expecting the version it was loaded at.

        Raises :class:`~tracseq_kit.ConcurrencyError` if its stream moved on meanwhile
        (or, for a new aggregate, already exists): services answer 409. On success the
        pending events are cleared; on failure they are kept.
        """
        return await self.save_all([aggregate], conn=conn)

    async def save_all(
        self, aggregates: Sequence[A], *, conn: Any = None
    ) -> list[RecordedEvent[Any]]:
        """Save several aggregates in one append (all or nothing), e.g. 10,000 samples
        registered from one sheet. Raises like :meth:`save` for the first stream that
        conflicts; then nothing is saved."""
        # One validated envelope, copied per event: a validated construction per event
        # would cost three times as much for a 10,000-sample registration.
        try:
            template = CloudEvent[Any](id="-", source=self._source, type="-", time=self._clock())
        except ValidationError as exc:
            raise ConfigurationError(
                f"the repository's clock or source makes invalid events: {exc}"
            ) from exc
        kind = self.aggregate.stream_type
        appends: list[StreamAppend] = []
        snapshots: list[Snapshot] = []
        for aggregate in aggregates:
            if not aggregate._pending:
                continue
            base = aggregate.saved_version
            events = [
                template.model_copy(
                    update={
                        "id": str(uuid.uuid4()),
                        "type": event_type,
                        "subject": aggregate.id,
                        "data": data,
                        "extensions": {STREAM_VERSION: base + n},
                    }
                )
                for n, (event_type, data) in enumerate(aggregate._pending, start=1)
            ]
            appends.append(StreamAppend(aggregate.id, events, kind, base))
            if self._every is not None and aggregate.version // self._every > base // self._every:
                snapshots.append(
                    Snapshot(
                        aggregate.id,
                        kind,
                        aggregate.version,
                        self.aggregate.snapshot_version,
                        aggregate.state.model_dump_json(),
                    )
                )
        if not appends:
            return []
        async with self._within(conn) as c:
            recorded = await self.store.append_many(appends, conn=c)
            if snapshots:
                await self.store.write_snapshots(snapshots, conn=c)
        for aggregate in aggregates:
            aggregate._mark_saved()
        return recorded
