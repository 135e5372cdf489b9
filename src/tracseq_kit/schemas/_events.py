"""API models of the event service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tracseq_kit.schemas._base import IsoDateTime, ResponseModel

__all__ = [
    "EventAccepted",
    "EventPage",
    "ReplayJob",
    "ReplayRequest",
    "StoredEvent",
    "TypeCount",
]


class StoredEvent(ResponseModel):
    """An event as the event service stores it: CloudEvent attributes, data, the trace
    it travelled in, its topic, and ``seq``, the order in which it was stored."""

    seq: int
    id: str
    type: str
    source: str
    subject: str | None = None
    time: datetime | None = None
    trace_id: str | None = None
    data: Any = None
    topic: str
    stored_at: datetime


class EventPage(ResponseModel):
    """One page of events, newest first; pass ``next_cursor`` back as ``cursor``."""

    items: list[StoredEvent]
    next_cursor: str | None = None


class ReplayRequest(BaseModel):
    """Body of ``POST /api/events/replay``: which stored events, and where to."""

    model_config = ConfigDict(extra="forbid")

    target_topic: str = Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")
    type: str | None = None
    source: str | None = None
    subject: str | None = None
    since: IsoDateTime | None = None
    until: IsoDateTime | None = None


class ReplayJob(ResponseModel):
    """Progress of a replay: ``done`` of ``total`` events re-published so far."""

    id: str
    target_topic: str
    status: str
    total: int
    done: int
    error: str | None = None
    created_at: datetime
    finished_at: datetime | None = None
    requested_by: str | None = None
    """The verified subject who started the replay."""


class TypeCount(ResponseModel):
    """How many events of one type from one source arrived in the window."""

    type: str
    source: str
    count: int


class EventAccepted(ResponseModel):
    """The event service's answer to a publish: the event's ``id``, now in its outbox."""

    id: str
    status: str = "accepted"
