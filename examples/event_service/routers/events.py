"""``/api/events``: query the stored events, one event, counts by type, publish."""

from __future__ import annotations

from typing import Annotated, Any

from examples.event_service import store
from examples.event_service.deps import READ, Postgres, Writer
from examples.event_service.store import Filters
from fastapi import APIRouter, HTTPException, Query

from tracseq_kit.events import CloudEvent, Outbox
from tracseq_kit.schemas import EventAccepted, EventPage, IsoDateTime, StoredEvent, TypeCount
from tracseq_kit.service import problems

PUBLISH_TOPIC = "tracseq.events"

router = APIRouter(prefix="/api/events", tags=["events"])
outbox = Outbox()

TypeFilter = Annotated[
    str | None, Query(max_length=200, description="an event type, or a prefix ending in .*")
]


@router.get("", response_model=EventPage, dependencies=[READ])
async def query_events(
    db: Postgres,
    type: TypeFilter = None,
    source: Annotated[str | None, Query(max_length=500)] = None,
    subject: Annotated[str | None, Query(max_length=500)] = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> EventPage:
    """Stored events, newest first; pass ``next_cursor`` back as ``cursor``."""
    filters = Filters(type, source, subject, since, until)
    return await store.newest_first(db, filters, limit=limit, before=cursor)


@router.get("/stats", response_model=list[TypeCount], dependencies=[READ])
async def stats(
    db: Postgres, window: Annotated[int, Query(ge=1, le=31 * 86400)] = 3600
) -> list[TypeCount]:
    """Events per type and source stored in the last ``window`` seconds."""
    return await store.counts_by_type(db, window)


@router.get(
    "/{event_id:path}", response_model=StoredEvent, responses=problems(404), dependencies=[READ]
)
async def get_event(event_id: str, db: Postgres) -> StoredEvent:
    """One stored event, by its CloudEvents id (which may hold a ``/``)."""
    found = await store.get(db, event_id)
    if found is None:
        raise HTTPException(404, f"event {event_id!r} not found")
    return found


@router.post("", status_code=202, response_model=EventAccepted)
async def publish_event(event: CloudEvent[Any], db: Postgres, who: Writer) -> EventAccepted:
    """Accept a CloudEvent (JSON body): stored at once (so it can be read back), and sent
    to Kafka through the outbox, never lost. The event's id makes a repeat harmless: it is
    stored once. Its ``actor`` extension is the caller's verified subject, whatever the
    body said."""
    event = event.model_copy(update={"extensions": {**event.extensions, "actor": who.subject}})
    async with db.acquire() as conn, conn.transaction():
        if await store.store(conn, event, PUBLISH_TOPIC):
            await outbox.add(conn, PUBLISH_TOPIC, event)
    return EventAccepted(id=event.id)
