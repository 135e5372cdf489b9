"""Replay jobs: stored events matching a filter, re-published to a topic in the background.

A job pages through the stored events in order; each page, the job's progress and its
resume point commit together with the page's outbox rows, so a job resumed after a crash
re-publishes nothing twice and skips nothing. A running job beats a heartbeat; a job
whose instance stopped beating is taken over by another instance, where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from examples.event_service import store
from examples.event_service.store import Filters

from tracseq_kit.events import CloudEvent, Outbox
from tracseq_kit.schemas import ReplayJob, ReplayRequest

log = logging.getLogger("event_service")

HEARTBEAT = 10.0
"""Seconds between a running job's heartbeats (and between looks for stale jobs)."""
STALE_AFTER = 45.0
"""A running job without a heartbeat for this long lost its instance: another resumes it."""

outbox = Outbox()


def _filters(body: ReplayRequest) -> Filters:
    return Filters(body.type, body.source, body.subject, body.since, body.until)


async def create(conn: Any, body: ReplayRequest, requested_by: str) -> ReplayJob:
    """Record a new running job (in the caller's transaction), started by ``requested_by``."""
    r = await conn.fetchrow(
        """INSERT INTO replay_jobs (id, filters, target_topic, requested_by)
           VALUES ($1, $2::jsonb, $3, $4) RETURNING *""",
        f"replay-{uuid.uuid4().hex[:12]}",
        body.model_dump_json(exclude={"target_topic"}),
        body.target_topic,
        requested_by,
    )
    return _job(r)


async def recent(db: Any, limit: int) -> list[ReplayJob]:
    """The newest jobs first."""
    rows = await db.fetch("SELECT * FROM replay_jobs ORDER BY created_at DESC, id LIMIT $1", limit)
    return [_job(r) for r in rows]


async def get(db: Any, job_id: str) -> ReplayJob | None:
    r = await db.fetchrow("SELECT * FROM replay_jobs WHERE id = $1", job_id)
    return None if r is None else _job(r)


def _job(r: Any) -> ReplayJob:
    return ReplayJob(**{k: r[k] for k in ReplayJob.model_fields})


class Replays:
    """The replay jobs this instance runs (``start``), and the takeover of stale ones."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, job_id: str, body: ReplayRequest, *, position: int = 0) -> None:
        """Run the job in the background (after its row committed)."""
        task = asyncio.create_task(self._run(job_id, body, position=position, resumed=position > 0))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, job_id: str, body: ReplayRequest, *, position: int, resumed: bool) -> None:
        pool, filters = self._pool, _filters(body)
        beating = asyncio.create_task(self._heartbeat(job_id))
        try:
            if not resumed:
                total = await store.count(pool, filters)
                await pool.execute("UPDATE replay_jobs SET total=$2 WHERE id=$1", job_id, total)
            while rows := await store.after(pool, filters, position):
                position = rows[-1]["seq"]
                async with pool.acquire() as conn, conn.transaction():
                    await outbox.add_many(
                        conn, body.target_topic, [_event(r, job_id) for r in rows]
                    )
                    await conn.execute(
                        """UPDATE replay_jobs SET done = done + $2, position = $3,
                           heartbeat_at = now() WHERE id = $1""",
                        job_id,
                        len(rows),
                        position,
                    )
            await pool.execute(
                "UPDATE replay_jobs SET status='finished', finished_at=now() WHERE id=$1", job_id
            )
        except Exception as exc:
            await pool.execute(
                """UPDATE replay_jobs SET status='failed', error=$2, finished_at=now()
                   WHERE id=$1""",
                job_id,
                f"{type(exc).__name__}: {exc}",
            )
        finally:
            beating.cancel()

    async def _heartbeat(self, job_id: str) -> None:  # "alive" even during a long page
        while True:
            await asyncio.sleep(HEARTBEAT)
            await self._pool.execute(
                "UPDATE replay_jobs SET heartbeat_at=now() WHERE id=$1", job_id
            )

    async def take_over_stale(self) -> None:
        """Resume running jobs whose instance stopped beating (claimed atomically)."""
        stale = await self._pool.fetch(
            """UPDATE replay_jobs SET heartbeat_at = now()
               WHERE status = 'running' AND heartbeat_at < now() - make_interval(secs => $1)
               RETURNING id, filters, target_topic, position""",
            STALE_AFTER,
        )
        for job in stale:
            log.warning("resuming replay job %s after seq %s", job["id"], job["position"])
            filters = job["filters"]
            if isinstance(filters, str):
                filters = json.loads(filters)
            body = ReplayRequest.model_validate({**filters, "target_topic": job["target_topic"]})
            self.start(job["id"], body, position=job["position"])

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Replays]:
        """Look for stale jobs every heartbeat while the block runs; cancel jobs after."""

        async def takeover_forever() -> None:
            while True:
                try:
                    await self.take_over_stale()
                except Exception as exc:  # the database is down: try again next round
                    log.warning("cannot look for stale replay jobs: %s", exc)
                await asyncio.sleep(HEARTBEAT)

        takeover = asyncio.create_task(takeover_forever())
        try:
            yield self
        finally:
            for task in (takeover, *self._tasks):
                task.cancel()
            await asyncio.gather(takeover, *self._tasks, return_exceptions=True)


def _event(r: Any, job_id: str) -> CloudEvent[Any]:
    return CloudEvent[Any](
        id=r["id"],
        source=r["source"],
        type=r["type"],
        subject=r["subject"],
        time=r["time"],
        data=json.loads(r["data"]) if r["data"] else None,
        extensions={"replayjob": job_id.replace("-", "")[:20]},
    )
