"""Events to stored columns and back; shared by both stores, so both round-trip JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

from tracseq_kit._exceptions import ConfigurationError, EventEncodingError
from tracseq_kit.events import CloudEvent, EventRegistry
from tracseq_kit.eventsourcing._types import RecordedEvent, StreamAppend, check_expected

_JSON_TYPES = frozenset({None, "application/json", "text/json"})


STREAM_VERSION = "streamversion"
"""The extension holding an event's version in its stream (set on every stored event)."""


class Row(NamedTuple):
    """An event's stored columns, minus its position; ``base`` is the stream's version
    before the append when known (else None) and ``k`` the event's rank in the append."""

    stream_id: str
    base: int | None
    k: int
    stream_type: str
    event_id: str
    type: str
    source: str
    subject: str | None
    time: datetime | None
    dataschema: str | None
    extensions: str | None
    data: str | None


def encode(
    stream_id: str, base: int | None, k: int, stream_type: str, event: CloudEvent[Any]
) -> Row:
    """The columns of ``event``, the ``k``-th of its append to ``stream_id``.

    The ``streamversion`` extension is not stored (the version column is; reads put it
    back). Raises :class:`~tracseq_kit.ConfigurationError` when the event's Kafka key
    (``partitionkey`` extension, else subject) is not the stream id — the outbox keys
    messages by it, which keeps each stream in order on Kafka — or its data is not JSON.
    """
    key = event.partition_key
    if key != stream_id:
        raise ConfigurationError(
            f"event {event.id} has key {key!r} but is appended to stream {stream_id!r}: "
            "set its subject to the stream id (the outbox keys Kafka messages by it)"
        )
    if event.datacontenttype not in _JSON_TYPES:
        raise ConfigurationError(
            f"event {event.id} has datacontenttype {event.datacontenttype!r}; "
            "the event store keeps JSON data only"
        )
    data = event.data
    if data is None:
        text = None
    elif isinstance(data, BaseModel):
        text = data.model_dump_json()
    else:
        text = json.dumps(event.data_json(), separators=(",", ":"))
    extensions = event.extensions
    if extensions and (len(extensions) > 1 or STREAM_VERSION not in extensions):
        kept = {n: v for n, v in extensions.items() if n != STREAM_VERSION}
        stored = json.dumps(kept, separators=(",", ":"))
    else:
        stored = None
    return Row(
        stream_id,
        base,
        k,
        stream_type,
        event.id,
        event.type,
        event.source,
        event.subject,
        event.time,
        event.dataschema,
        stored,
        text,
    )


def stamped(event: CloudEvent[Any], version: int) -> CloudEvent[Any]:
    """``event`` carrying ``version`` in its ``streamversion`` extension.

    Raises :class:`~tracseq_kit.ConfigurationError` if it carries another version.
    """
    have = event.extensions.get(STREAM_VERSION)
    if have is None:
        return event.model_copy(
            update={"extensions": {**event.extensions, STREAM_VERSION: version}}
        )
    if have != version or isinstance(have, bool):
        raise ConfigurationError(
            f"event {event.id} carries streamversion {have!r} but would be version "
            f"{version} of its stream"
        )
    return event


def checked(appends: Sequence[StreamAppend]) -> list[StreamAppend]:
    """``appends`` validated: each stream once, valid expectations, a subject on every
    event (the stream id, when it had no key at all)."""
    seen: set[str] = set()
    out: list[StreamAppend] = []
    for a in appends:
        if not a.stream_id:
            raise ConfigurationError("a stream id must not be empty")
        if not a.stream_type:
            raise ConfigurationError(f"stream {a.stream_id!r} needs a stream_type")
        if a.stream_id in seen:
            raise ConfigurationError(
                f"stream {a.stream_id!r} appears twice in one append_many; "
                "put all of its events in one StreamAppend"
            )
        seen.add(a.stream_id)
        check_expected(a.expected_version)
        if any(e.partition_key is None for e in a.events):
            events = [
                e if e.partition_key is not None else e.model_copy(update={"subject": a.stream_id})
                for e in a.events
            ]
            a = StreamAppend(a.stream_id, events, a.stream_type, a.expected_version)
        out.append(a)
    return out


def decode(
    registry: EventRegistry,
    *,
    stream_id: str,
    stream_type: str,
    version: int,
    position: int,
    recorded_at: datetime,
    event_id: str,
    type: str,
    source: str,
    subject: str | None,
    time: datetime | None,
    dataschema: str | None,
    extensions: str | None,
    data: str | None,
) -> RecordedEvent[Any]:
    """A stored row back as a :class:`RecordedEvent`, data typed through ``registry``.

    Raises :class:`~tracseq_kit.EventEncodingError` if the stored data no longer
    validates against the registered model (an incompatible change of the model).
    """
    model = registry.model_for(type)
    value: Any = None
    if data is not None:
        if model is not None:
            try:
                value = model.model_validate_json(data)
            except ValidationError as exc:
                raise EventEncodingError(
                    f"stored event {event_id} ({type}) does not match {model.__name__}: {exc}"
                ) from exc
        else:
            value = json.loads(data)
    event: CloudEvent[Any] = CloudEvent.model_construct(
        id=event_id,
        source=source,
        specversion="1.0",
        type=type,
        subject=subject,
        time=time,
        datacontenttype="application/json",
        dataschema=dataschema,
        data=value,
        extensions={**json.loads(extensions), STREAM_VERSION: version}
        if extensions
        else {STREAM_VERSION: version},
    )
    return RecordedEvent(event, stream_id, stream_type, version, position, recorded_at)
