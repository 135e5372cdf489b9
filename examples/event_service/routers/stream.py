"""``/api/events/stream``: stored events as Server-Sent Events, live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from examples.event_service import store
from examples.event_service.deps import READ, Postgres, Settings
from examples.event_service.store import Filters
from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from tracseq_kit.service import problems

router = APIRouter(prefix="/api/events", tags=["stream"], dependencies=[READ])

KEEP_ALIVE = 15.0
"""Seconds of silence after which a comment line keeps proxies from closing the stream."""


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **problems(),
    },
)
async def stream(
    request: Request,
    db: Postgres,
    settings: Settings,
    type: Annotated[str | None, Query(max_length=200)] = None,
    source: Annotated[str | None, Query(max_length=500)] = None,
    subject: Annotated[str | None, Query(max_length=500)] = None,
    last_event_id: Annotated[str | None, Header(alias="last-event-id")] = None,
) -> StreamingResponse:
    """Server-Sent Events: stored events as they arrive; resume with ``Last-Event-ID``
    (a sequence number)."""
    try:
        after = int(last_event_id) if last_event_id else None
    except ValueError:
        raise HTTPException(400, "Last-Event-ID must be an event sequence number") from None
    if after is None:
        after = await store.last_position(db)
    filters = Filters(type, source, subject)

    async def events() -> AsyncIterator[bytes]:
        position, idle = after, 0.0
        while not await request.is_disconnected():
            rows = await store.after(db, filters, position)
            for r in rows:
                e = store.stored(r)
                position = e.seq
                yield f"id: {e.seq}\nevent: {e.type}\ndata: {e.model_dump_json()}\n\n".encode()
            if not rows:
                await asyncio.sleep(settings.poll_interval)
                idle += settings.poll_interval
                if idle >= KEEP_ALIVE:
                    idle = 0.0
                    yield b": keep-alive\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"cache-control": "no-store"}
    )
