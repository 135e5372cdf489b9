"""A small sample domain and helpers shared by the eventsourcing tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel

from tracseq_kit.events import CloudEvent
from tracseq_kit.eventsourcing import (
    Aggregate,
    Projection,
    RecordedEvent,
    applies,
    handles,
    handles_batch,
    migrate,
)

Status = Literal["new", "received", "qc_passed", "qc_failed", "archived"]


class SampleReceived(BaseModel):
    barcode: str
    project: str
    at: datetime | None = None


class QcPassed(BaseModel):
    by: str


class QcFailed(BaseModel):
    by: str
    reason: str


class Archived(BaseModel):
    by: str


class SampleState(BaseModel):
    status: Status = "new"
    barcode: str = ""
    project: str = ""
    qc_by: str | None = None


class Sample(Aggregate[SampleState]):
    stream_type = "sample"

    @classmethod
    def receive(cls, sample_id: str, *, barcode: str, project: str = "P-1") -> Sample:
        sample = cls(sample_id)
        sample.record(SampleReceived(barcode=barcode, project=project))
        return sample

    def pass_qc(self, *, by: str) -> None:
        self.require_status("pass_qc", "received")
        self.record(QcPassed(by=by))

    def fail_qc(self, *, by: str, reason: str) -> None:
        self.require_status("fail_qc", "received")
        self.require(bool(reason.strip()), "fail_qc", "a failed QC needs a reason")
        self.record(QcFailed(by=by, reason=reason))

    def archive(self, *, by: str) -> None:
        self.require_status("archive", "qc_passed", "qc_failed")
        self.record(Archived(by=by))

    @applies("tracseq.sample.received", SampleReceived)
    def _received(self, data: SampleReceived) -> None:
        self.state.status = "received"
        self.state.barcode = data.barcode
        self.state.project = data.project

    @applies("tracseq.sample.qc_passed", QcPassed)
    def _qc_passed(self, data: QcPassed) -> None:
        self.state.status = "qc_passed"
        self.state.qc_by = data.by

    @applies("tracseq.sample.qc_failed", QcFailed)
    def _qc_failed(self, data: QcFailed) -> None:
        self.state.status = "qc_failed"
        self.state.qc_by = data.by

    @applies("tracseq.sample.archived", Archived)
    def _archived(self, data: Archived) -> None:
        self.state.status = "archived"


STATUS_OF = {
    "tracseq.sample.qc_passed": "qc_passed",
    "tracseq.sample.qc_failed": "qc_failed",
    "tracseq.sample.archived": "archived",
}

READ_MODEL = """CREATE TABLE IF NOT EXISTS samples_by_status (
    sample_id text PRIMARY KEY, status text NOT NULL, project text NOT NULL,
    changes integer NOT NULL)"""


class SamplesByStatus(Projection):
    """Status and project per sample; ``changes`` counts applied events, so an event
    applied twice would show."""

    name = "samples_by_status"
    tables = ("samples_by_status",)

    @handles_batch("tracseq.sample.received", SampleReceived)
    async def _received(self, conn: Any, events: Sequence[RecordedEvent[SampleReceived]]) -> None:
        await conn.execute(
            """INSERT INTO samples_by_status (sample_id, status, project, changes)
               SELECT id, 'received', project, 1 FROM unnest($1::text[], $2::text[])
                   AS t(id, project)""",
            [e.stream_id for e in events],
            [e.data.project for e in events],
        )

    async def _status(self, conn: Any, event: RecordedEvent[Any]) -> None:
        await conn.execute(
            "UPDATE samples_by_status SET status = $2, changes = changes + 1 WHERE sample_id = $1",
            event.stream_id,
            STATUS_OF[event.type],
        )

    @handles("tracseq.sample.qc_passed", QcPassed)
    async def _qc_passed(self, conn: Any, event: RecordedEvent[QcPassed]) -> None:
        await self._status(conn, event)

    @handles("tracseq.sample.qc_failed", QcFailed)
    async def _qc_failed(self, conn: Any, event: RecordedEvent[QcFailed]) -> None:
        await self._status(conn, event)

    @handles("tracseq.sample.archived", Archived)
    async def _archived(self, conn: Any, event: RecordedEvent[Archived]) -> None:
        await self._status(conn, event)


async def read_model(pool: Any) -> dict[str, tuple[str, str, int]]:
    rows = await pool.fetch("SELECT sample_id, status, project, changes FROM samples_by_status")
    return {r["sample_id"]: (r["status"], r["project"], r["changes"]) for r in rows}


def event(
    stream_id: str, payload: BaseModel, event_type: str, **extensions: Any
) -> CloudEvent[Any]:
    return CloudEvent[Any](
        source="/tests", type=event_type, subject=stream_id, data=payload, extensions=extensions
    )


def received(stream_id: str, n: int = 0) -> CloudEvent[Any]:
    return event(
        stream_id, SampleReceived(barcode=f"BC{n}", project="P-1"), "tracseq.sample.received"
    )


def passed(stream_id: str, by: str = "ann") -> CloudEvent[Any]:
    return event(stream_id, QcPassed(by=by), "tracseq.sample.qc_passed")


TABLES = (
    "tracseq_es_events, tracseq_es_snapshots, tracseq_es_checkpoints, tracseq_outbox, "
    "tracseq_inbox, samples_by_status"
)


@asynccontextmanager
async def migrated_pool(dsn: str, *, max_size: int = 8) -> AsyncIterator[Any]:
    """A pool on ``dsn`` with the event store, outbox and read model tables, emptied."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            await conn.execute(READ_MODEL)
            await conn.execute(f"TRUNCATE {TABLES}; ALTER SEQUENCE tracseq_es_position RESTART")
        yield pool
    finally:
        await pool.close()
