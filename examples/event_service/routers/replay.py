"""``/api/events/replay``: re-publish stored events to a topic, as a background job."""

from __future__ import annotations

import re
from typing import Annotated

from examples.event_service import replay
from examples.event_service.deps import READ, Postgres, Settings, Writer
from fastapi import APIRouter, Depends, HTTPException, Query, Request

from tracseq_kit.schemas import ReplayJob, ReplayRequest
from tracseq_kit.service import Idempotent, problems

router = APIRouter(prefix="/api/events/replay", tags=["replay"])


def _replays(request: Request) -> replay.Replays:
    replays: replay.Replays = request.app.state.replays
    return replays


Replays = Annotated[replay.Replays, Depends(_replays)]


@router.post("", status_code=202, response_model=ReplayJob, responses=problems(409))
async def start_replay(
    body: ReplayRequest,
    db: Postgres,
    settings: Settings,
    replays: Replays,
    write: Idempotent,
    who: Writer,
) -> ReplayJob:
    """Re-publish the matching stored events to ``target_topic`` in the background; poll
    the job for progress. With an ``Idempotency-Key`` a retry gets the same job."""
    if re.match(settings.topic_pattern, body.target_topic):
        raise HTTPException(
            422,
            f"{body.target_topic!r} is a topic this service consumes; replaying into it would loop",
        )
    async with db.acquire() as conn, conn.transaction():
        await write.begin(conn)
        job = await replay.create(conn, body, who.subject)
        await write.remember(conn, job)
    replays.start(job.id, body)
    return job


@router.get("", response_model=list[ReplayJob], dependencies=[READ])
async def list_replays(
    db: Postgres, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[ReplayJob]:
    """The newest replay jobs first, with their progress."""
    return await replay.recent(db, limit)


@router.get("/{job_id}", response_model=ReplayJob, responses=problems(404), dependencies=[READ])
async def get_replay(job_id: str, db: Postgres) -> ReplayJob:
    """A replay job's progress: ``done`` of ``total`` events re-published."""
    job = await replay.get(db, job_id)
    if job is None:
        raise HTTPException(404, f"replay job {job_id!r} not found")
    return job
