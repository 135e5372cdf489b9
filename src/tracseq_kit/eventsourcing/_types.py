"""The values the event stores take and give: expected versions, recorded events, snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any, Generic, TypeVar, cast

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.events import CloudEvent

__all__ = ["ExpectedVersion", "RecordedEvent", "Snapshot", "StreamAppend"]

DataT = TypeVar("DataT")


class ExpectedVersion(IntEnum):
    """What an append expects of its stream, besides an exact version (an ``int``).

    Versions count a stream's events (1, 2, 3, ...), so an exact ``n`` means "the
    stream has exactly n events"; ``NO_STREAM`` is the same as 0. ``ANY`` skips the
    check, ``STREAM_EXISTS`` requires at least one event. These are EventStoreDB's
    expected-revision choices.
    """

    NO_STREAM = 0
    ANY = -1
    STREAM_EXISTS = -2


def check_expected(expected: int) -> int:
    """``expected`` as the int the stores compare; a bad value is a ConfigurationError."""
    if isinstance(expected, bool) or not isinstance(expected, int):
        raise ConfigurationError(
            f"expected_version must be an int or an ExpectedVersion, not {expected!r}"
        )
    if expected < ExpectedVersion.STREAM_EXISTS:
        raise ConfigurationError(
            f"expected_version {expected} is invalid: use a version >= 0 or an ExpectedVersion"
        )
    return int(expected)


def expected_label(expected: int) -> int | str:
    """How :class:`~tracseq_kit.ConcurrencyError` names an expectation."""
    if expected == ExpectedVersion.NO_STREAM:
        return "no stream"
    if expected == ExpectedVersion.STREAM_EXISTS:
        return "stream exists"
    return int(expected)


def satisfies(expected: int, actual: int) -> bool:
    """Whether a stream at version ``actual`` meets ``expected``."""
    if expected == ExpectedVersion.ANY:
        return True
    if expected == ExpectedVersion.STREAM_EXISTS:
        return actual > 0
    return expected == actual


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """One stream's part of :meth:`EventStore.append_many`: its events and expectation.

    ``stream_type`` names the kind of aggregate (``"sample"``); ``expected_version`` is
    an exact version or an :class:`ExpectedVersion`.
    """

    stream_id: str
    events: Sequence[CloudEvent[Any]]
    stream_type: str
    expected_version: int


@dataclass(frozen=True, slots=True)
class RecordedEvent(Generic[DataT]):
    """An event as the store holds it.

    ``event`` is the CloudEvent (its ``data`` decoded with the store's registry: the
    registered pydantic model, else plain JSON values); ``version`` is its number in
    the stream (1, 2, ...), ``position`` its place in the store's global order (gaps
    are possible, order is what counts), ``recorded_at`` when the store took it.
    """

    event: CloudEvent[DataT]
    stream_id: str
    stream_type: str
    version: int
    position: int
    recorded_at: datetime

    @property
    def data(self) -> DataT:
        """The payload (``event.data``)."""
        return cast(DataT, self.event.data)

    @property
    def type(self) -> str:
        """The event type, e.g. ``tracseq.sample.received``."""
        return self.event.type

    @property
    def id(self) -> str:
        """The event id (unique in the store)."""
        return self.event.id


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An aggregate's state as of ``version`` of its stream, as JSON text.

    ``schema_version`` is the aggregate class's ``snapshot_version`` when it was taken;
    snapshots of another schema are ignored on load.
    """

    stream_id: str
    stream_type: str
    version: int
    schema_version: int
    state: str
