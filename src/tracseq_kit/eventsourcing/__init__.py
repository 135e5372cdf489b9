"""Event sourcing: aggregates whose state is their stream of events, on PostgreSQL.

- :class:`Aggregate` and :func:`applies`: state rebuilt from typed events (pydantic
  payloads, CloudEvents types like ``tracseq.sample.received``), commands that guard
  with :meth:`Aggregate.require_status` and :meth:`Aggregate.record` events;
- :class:`Repository`: load (from a snapshot, optionally) and save with the expected
  version; a stale save raises :class:`~tracseq_kit.ConcurrencyError` (409);
- :class:`EventStore`, the contract of :class:`PostgresEventStore` (appends write the
  outbox in the same transaction, one statement per batch) and
  :class:`InMemoryEventStore` (for unit tests); :class:`ExpectedVersion`,
  :class:`StreamAppend`, :class:`RecordedEvent`, :class:`Snapshot`;
- :class:`Projection` with :func:`handles` / :func:`handles_batch`: read models with a
  checkpoint each, run inline (``PostgresEventStore(inline=...)``) or catch-up
  (:class:`ProjectionRunner`), emptied and replayed by :func:`rebuild`
  (``python -m tracseq_kit.eventsourcing rebuild``);
- :func:`migrate` creates the tables (and the outbox's).
"""

from tracseq_kit.eventsourcing._aggregate import Aggregate, applies
from tracseq_kit.eventsourcing._memory import InMemoryEventStore
from tracseq_kit.eventsourcing._postgres import PostgresEventStore, migrate
from tracseq_kit.eventsourcing._projection import Projection, handles, handles_batch, rebuild
from tracseq_kit.eventsourcing._repository import Repository
from tracseq_kit.eventsourcing._runner import ProjectionRunner
from tracseq_kit.eventsourcing._store import EventStore
from tracseq_kit.eventsourcing._types import ExpectedVersion, RecordedEvent, Snapshot, StreamAppend

__all__ = [
    "Aggregate",
    "EventStore",
    "ExpectedVersion",
    "InMemoryEventStore",
    "PostgresEventStore",
    "Projection",
    "ProjectionRunner",
    "RecordedEvent",
    "Repository",
    "Snapshot",
    "StreamAppend",
    "applies",
    "handles",
    "handles_batch",
    "migrate",
    "rebuild",
]
