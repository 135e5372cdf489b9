"""The TracSeq event service: stores every event once and serves query, publish,
live tail (SSE) and stats.

    TRACSEQ_EVENTS_POSTGRES_DSN=... TRACSEQ_EVENTS_KAFKA_BOOTSTRAP=... \\
        python -m examples.event_service.app
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from opentelemetry import trace
from pydantic import SecretStr

from tracseq_kit.db import apply_migrations
from tracseq_kit.events import (
    CloudEvent,
    Delivery,
    EventConsumer,
    Outbox,
    migrate,
    running_relay,
)
from tracseq_kit.schemas import EventPage, ReplayJob, ReplayRequest, StoredEvent, TypeCount
from tracseq_kit.service import create_service, postgres_pool
from tracseq_kit.settings import ServiceSettings

MIGRATIONS = Path(__file__).with_name("migrations")
PUBLISH_TOPIC = "tracseq.events"


_log = logging.getLogger("event_service")

POSTGRES_DOWN: tuple[type[BaseException], ...] = (
    ConnectionError,
    FileNotFoundError,  # the server's Unix socket is gone
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, cannot connect now
    asyncpg.exceptions.TooManyConnectionsError,
)
"""Errors that mean PostgreSQL is unreachable, not that an event is bad."""

REPLAY_HEARTBEAT = 10.0
"""Seconds between a running replay job's heartbeats (and between looks for stale jobs)."""
REPLAY_STALE_AFTER = 45.0
"""A running job without a heartbeat for this long lost its instance: another resumes it."""


class EventServiceSettings(ServiceSettings, env_prefix="TRACSEQ_EVENTS_"):
    """``TRACSEQ_EVENTS_*`` variables."""

    service_name: str = "event_service"
    port: int = 8095
    postgres_dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/postgres")
    kafka_bootstrap: str | None = None
    topic_pattern: str = r"tracseq\.[a-z0-9_-]+(\.retry\.\d+)?$"
    """Every ``tracseq.*`` topic (and its retry topics; not the dead-letter ones)."""
    group_id: str = "event-service"
    poll_interval: float = 0.5


def _pool(request: Request) -> Any:
    return request.app.state.resources["postgres"]


Pool = Annotated[Any, Depends(_pool)]
IdempotencyKey = Annotated[
    str | None, Header(alias="idempotency-key", min_length=1, max_length=200)
]
"""A client's key for one logical request: a retry with it starts no second job."""


def _stored(r: Any) -> StoredEvent:
    return StoredEvent(
        seq=r["seq"],
        id=r["id"],
        type=r["type"],
        source=r["source"],
        subject=r["subject"],
        time=r["time"],
        trace_id=r["trace_id"],
        data=json.loads(r["data"]) if r["data"] is not None else None,
        topic=r["topic"],
        stored_at=r["stored_at"],
    )


def _filters(
    type_: str | None,
    source: str | None,
    subject: str | None,
    since: datetime | None,
    until: datetime | None,
    args: list[Any],
) -> list[str]:
    """SQL conditions for the shared filters; ``type`` may end in ``.*`` (prefix)."""

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    where = []
    if type_:
        if type_.endswith(".*"):
            prefix = type_[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(f"type LIKE {arg(prefix + '%')}")
        else:
            where.append(f"type = {arg(type_)}")
    if source:
        where.append(f"source = {arg(source)}")
    if subject:
        where.append(f"subject = {arg(subject)}")
    if since:
        where.append(f"time >= {arg(since)}")
    if until:
        where.append(f"time < {arg(until)}")
    return where


async def store(pool: Any, event: CloudEvent[Any], topic: str) -> bool:
    """Store ``event`` unless its id is already stored; True if it was new."""
    span = trace.get_current_span().get_span_context()
    trace_id = format(span.trace_id, "032x") if span.is_valid else None
    status = await pool.execute(
        """INSERT INTO stored_events (id, type, source, subject, time, trace_id, data, topic)
           VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8) ON CONFLICT (id) DO NOTHING""",
        event.id,
        event.type,
        event.source,
        event.subject,
        event.time,
        trace_id,
        json.dumps(event.data_json()) if event.data is not None else None,
        topic,
    )
    return bool(status.endswith("1"))


class _ConsumerSupervisor:
    """Keeps the consumer running: when it fails (Kafka gone, a commit that timed out),
    a fresh one resumes from the committed offsets after a growing pause (1 s to 30 s).
    ``check`` fails with the last error while no consumer runs."""

    def __init__(self, factory: Callable[[], EventConsumer]) -> None:
        self._factory = factory
        self._consumer = factory()
        self._stopping = False
        self.error: str | None = None
        self.restarts = 0

    async def run(self) -> None:
        delay = 1.0
        while True:
            try:
                await self._consumer.run()
                return  # stop() was called
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                _log.warning("event consumer stopped (%s); restarting in %.0f s", self.error, delay)
            await asyncio.sleep(delay)
            if self._stopping:
                return
            delay = min(delay * 2, 30.0)
            self._consumer = self._factory()
            self.restarts += 1
            self.error = None

    async def check(self) -> None:
        if self.error is not None:
            raise ConnectionError(f"not consuming: {self.error}")

    async def stop(self, task: asyncio.Task[None]) -> None:
        self._stopping = True
        self._consumer.stop()
        done, _ = await asyncio.wait({task}, timeout=20)
        if not done:
            task.cancel()


def create_app(settings: EventServiceSettings | None = None) -> FastAPI:
    """The event service as an ASGI app (consumer and relay run in its lifespan)."""
    settings = settings or EventServiceSettings()
    outbox = Outbox()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = app.state.resources["postgres"]
        async with pool.acquire() as conn:
            await apply_migrations(conn, MIGRATIONS, namespace="event_service")
            await migrate(conn)
        takeover = asyncio.create_task(take_over_stale_jobs(pool))  # defined below
        try:
            async with _consuming(app, pool):
                yield
        finally:
            takeover.cancel()
            await asyncio.gather(takeover, return_exceptions=True)

    @asynccontextmanager
    async def _consuming(app: FastAPI, pool: Any) -> AsyncIterator[None]:
        """The consumer (stored events) and the outbox relay (replays), with Kafka only."""
        if settings.kafka_bootstrap is None:
            yield
            return

        async def handle(event: CloudEvent[Any], delivery: Delivery) -> None:
            origin = dict(delivery.headers).get("tracseq-original-topic")
            await store(pool, event, origin.decode() if origin else delivery.topic)

        def new_consumer() -> EventConsumer:
            return EventConsumer(
                topic_pattern=settings.topic_pattern,
                group_id=settings.group_id,
                handler=handle,
                bootstrap_servers=settings.kafka_bootstrap,
                # PostgreSQL down is an outage, not a bad event: wait, do not dead-letter.
                pause_on=POSTGRES_DOWN,
            )

        supervisor = _ConsumerSupervisor(new_consumer)
        # Non-critical: while consuming is down the stored events stay queryable, so the
        # service stays ready; /health says "degraded" with the reason.
        app.state.health.add("consumer", supervisor.check, critical=False)
        async with running_relay(pool, settings.kafka_bootstrap):
            task = asyncio.create_task(supervisor.run())
            try:
                yield
            finally:
                await supervisor.stop(task)

    app = create_service(
        settings,
        resources=[postgres_pool(settings.postgres_dsn, min_size=1, max_size=10)],
        lifespan=lifespan,
        title="TracSeq event service",
    )

    @app.get("/api/events", response_model=EventPage)
    async def query_events(
        db: Pool,
        type: Annotated[str | None, Query(max_length=200)] = None,
        source: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        cursor: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    ) -> EventPage:
        args: list[Any] = []
        where = _filters(type, source, subject, since, until, args)
        if cursor is not None:
            args.append(cursor)
            where.append(f"seq < ${len(args)}")
        sql = "SELECT * FROM stored_events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        args.append(limit + 1)
        rows = await db.fetch(sql + f" ORDER BY seq DESC LIMIT ${len(args)}", *args)
        items = [_stored(r) for r in rows[:limit]]
        next_cursor = str(items[-1].seq) if len(rows) > limit else None
        return EventPage(items=items, next_cursor=next_cursor)

    @app.get("/api/events/stats", response_model=list[TypeCount])
    async def stats(
        db: Pool, window: Annotated[int, Query(ge=1, le=31 * 86400)] = 3600
    ) -> list[TypeCount]:
        rows = await db.fetch(
            """SELECT type, source, count(*) AS n FROM stored_events
               WHERE stored_at >= now() - make_interval(secs => $1)
               GROUP BY type, source ORDER BY n DESC, type""",
            window,
        )
        return [TypeCount(type=r["type"], source=r["source"], count=r["n"]) for r in rows]

    @app.get("/api/events/stream")
    async def stream(
        request: Request,
        db: Pool,
        type: Annotated[str | None, Query(max_length=200)] = None,
        source: str | None = None,
        subject: str | None = None,
        last_event_id: Annotated[str | None, Header(alias="last-event-id")] = None,
    ) -> StreamingResponse:
        """Server-Sent Events: stored events as they arrive; resume with Last-Event-ID."""
        try:
            after = int(last_event_id) if last_event_id else None
        except ValueError:
            raise HTTPException(400, "Last-Event-ID must be an event sequence number") from None
        if after is None:
            after = int(await db.fetchval("SELECT coalesce(max(seq), 0) FROM stored_events"))

        async def events() -> AsyncIterator[bytes]:
            position = after
            idle = 0.0
            while not await request.is_disconnected():
                args: list[Any] = []
                where = _filters(type, source, subject, None, None, args)
                args.append(position)
                where.append(f"seq > ${len(args)}")
                rows = await db.fetch(
                    "SELECT * FROM stored_events WHERE "
                    + " AND ".join(where)
                    + " ORDER BY seq LIMIT 500",
                    *args,
                )
                for r in rows:
                    e = _stored(r)
                    position = e.seq
                    yield (
                        f"id: {e.seq}\nevent: {e.type}\ndata: {e.model_dump_json()}\n\n"
                    ).encode()
                if not rows:
                    await asyncio.sleep(settings.poll_interval)
                    idle += settings.poll_interval
                    if idle >= 15:
                        idle = 0.0
                        yield b": keep-alive\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"cache-control": "no-store"}
        )

    jobs: set[asyncio.Task[None]] = set()

    async def run_replay(
        pool: Any, job_id: str, body: ReplayRequest, *, position: int = 0, resumed: bool = False
    ) -> None:
        args: list[Any] = []
        where = _filters(body.type, body.source, body.subject, body.since, body.until, args)
        condition = (" WHERE " + " AND ".join(where)) if where else ""

        async def heartbeat() -> None:  # "this job is alive" even during a long page
            while True:
                await asyncio.sleep(REPLAY_HEARTBEAT)
                await pool.execute("UPDATE replay_jobs SET heartbeat_at=now() WHERE id=$1", job_id)

        beating = asyncio.create_task(heartbeat())
        try:
            if not resumed:
                total = await pool.fetchval(f"SELECT count(*) FROM stored_events{condition}", *args)
                await pool.execute("UPDATE replay_jobs SET total=$2 WHERE id=$1", job_id, total)
            while True:
                page_args = [*args, position]
                page_where = [*where, f"seq > ${len(page_args)}"]
                rows = await pool.fetch(
                    "SELECT * FROM stored_events WHERE "
                    + " AND ".join(page_where)
                    + " ORDER BY seq LIMIT 500",
                    *page_args,
                )
                if not rows:
                    break
                events = [
                    CloudEvent[Any](
                        id=r["id"],
                        source=r["source"],
                        type=r["type"],
                        subject=r["subject"],
                        time=r["time"],
                        data=json.loads(r["data"]) if r["data"] else None,
                        extensions={"replayjob": job_id.replace("-", "")[:20]},
                    )
                    for r in rows
                ]
                position = rows[-1]["seq"]
                # The page, the progress and the resume point commit together: a job taken
                # over after a crash re-publishes nothing twice and skips nothing.
                async with pool.acquire() as conn, conn.transaction():
                    await outbox.add_many(conn, body.target_topic, events)
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

    def start_job(
        pool: Any, job_id: str, body: ReplayRequest, *, position: int = 0, resumed: bool = False
    ) -> None:
        task = asyncio.create_task(
            run_replay(pool, job_id, body, position=position, resumed=resumed)
        )
        jobs.add(task)
        task.add_done_callback(jobs.discard)

    async def take_over_stale_jobs(pool: Any) -> None:
        """Resume running jobs whose instance stopped beating (claimed atomically)."""
        while True:
            try:
                stale = await pool.fetch(
                    """UPDATE replay_jobs SET heartbeat_at = now()
                       WHERE status = 'running'
                         AND heartbeat_at < now() - make_interval(secs => $1)
                       RETURNING id, filters, target_topic, position""",
                    REPLAY_STALE_AFTER,
                )
                for job in stale:
                    _log.warning("resuming replay job %s after seq %s", job["id"], job["position"])
                    filters = job["filters"]
                    if isinstance(filters, str):
                        filters = json.loads(filters)
                    body = ReplayRequest.model_validate(
                        {**filters, "target_topic": job["target_topic"]}
                    )
                    start_job(pool, job["id"], body, position=job["position"], resumed=True)
            except Exception as exc:  # the database is down: try again next round
                _log.warning("cannot look for stale replay jobs: %s", exc)
            await asyncio.sleep(REPLAY_HEARTBEAT)

    @app.post("/api/events/replay", status_code=202, response_model=ReplayJob)
    async def start_replay(
        body: ReplayRequest, db: Pool, idempotency_key: IdempotencyKey = None
    ) -> ReplayJob:
        """Re-publish the matching stored events to ``target_topic`` in the background.

        With an ``Idempotency-Key``, a retry gets the job the first request started (and
        a key reused for another request is a 422), so clients can retry safely.
        """
        if re.match(settings.topic_pattern, body.target_topic):
            raise HTTPException(
                422,
                f"{body.target_topic!r} is a topic this service consumes; replaying "
                "into it would loop",
            )
        request = body.model_dump_json()
        job_id = await db.fetchval(
            """INSERT INTO replay_jobs (id, filters, target_topic, idempotency_key, request)
               VALUES ($1, $2::jsonb, $3, $4, $5)
               ON CONFLICT (idempotency_key) DO NOTHING RETURNING id""",
            f"replay-{uuid.uuid4().hex[:12]}",
            body.model_dump_json(exclude={"target_topic"}),
            body.target_topic,
            idempotency_key,
            request,
        )
        if job_id is None:  # this key started a job before
            first = await db.fetchrow(
                "SELECT id, request FROM replay_jobs WHERE idempotency_key = $1", idempotency_key
            )
            if first["request"] != request:
                raise HTTPException(
                    422, "this Idempotency-Key was already used for another request"
                )
            return await get_replay(first["id"], db)
        start_job(db, job_id, body)
        return await get_replay(job_id, db)

    @app.get("/api/events/replay/{job_id}", response_model=ReplayJob)
    async def get_replay(job_id: str, db: Pool) -> ReplayJob:
        r = await db.fetchrow("SELECT * FROM replay_jobs WHERE id = $1", job_id)
        if r is None:
            raise HTTPException(404, f"replay job {job_id!r} not found")
        return ReplayJob(**{k: r[k] for k in ReplayJob.model_fields})

    @app.get("/api/events/{event_id}", response_model=StoredEvent)
    async def get_event(event_id: str, db: Pool) -> StoredEvent:
        r = await db.fetchrow("SELECT * FROM stored_events WHERE id = $1", event_id)
        if r is None:
            raise HTTPException(404, f"event {event_id!r} not found")
        return _stored(r)

    @app.post("/api/events", status_code=202)
    async def publish_event(event: CloudEvent[Any], db: Pool) -> dict[str, str]:
        """Accept a CloudEvent (JSON body); it goes out through the outbox, never lost."""
        async with db.acquire() as conn, conn.transaction():
            await outbox.add(conn, PUBLISH_TOPIC, event)
        return {"id": event.id, "status": "accepted"}

    return app


if __name__ == "__main__":
    from tracseq_kit.service import run_service

    run_service(create_app())
