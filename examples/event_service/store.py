"""The event service's SQL: every event stored once, read back by filters and position."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opentelemetry import trace

from tracseq_kit.events import CloudEvent
from tracseq_kit.schemas import EventPage, StoredEvent, TypeCount


@dataclass(frozen=True)
class Filters:
    """Which stored events: ``type`` may end in ``.*`` (a prefix)."""

    type: str | None = None
    source: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self, args: list[Any]) -> list[str]:
        """SQL conditions, their values appended to ``args``."""

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        out = []
        if self.type:
            if self.type.endswith(".*"):
                prefix = self.type[:-1]
                escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                out.append(f"type LIKE {arg(escaped + '%')}")
            else:
                out.append(f"type = {arg(self.type)}")
        if self.source:
            out.append(f"source = {arg(self.source)}")
        if self.subject:
            out.append(f"subject = {arg(self.subject)}")
        if self.since:
            out.append(f"time >= {arg(self.since)}")
        if self.until:
            out.append(f"time < {arg(self.until)}")
        return out


def stored(r: Any) -> StoredEvent:
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


async def store(db: Any, event: CloudEvent[Any], topic: str) -> bool:
    """Store ``event`` unless its id is already stored; True if it was new."""
    span = trace.get_current_span().get_span_context()
    trace_id = format(span.trace_id, "032x") if span.is_valid else None
    status = await db.execute(
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


async def newest_first(db: Any, filters: Filters, *, limit: int, before: int | None) -> EventPage:
    """One page, newest first; ``before`` is the previous page's cursor."""
    args: list[Any] = []
    where = filters.where(args)
    if before is not None:
        args.append(before)
        where.append(f"seq < ${len(args)}")
    sql = "SELECT * FROM stored_events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    args.append(limit + 1)
    rows = await db.fetch(sql + f" ORDER BY seq DESC LIMIT ${len(args)}", *args)
    items = [stored(r) for r in rows[:limit]]
    return EventPage(items=items, next_cursor=str(items[-1].seq) if len(rows) > limit else None)


async def after(db: Any, filters: Filters, position: int, *, limit: int = 500) -> list[Any]:
    """Rows after ``position``, oldest first (for the live stream and replays)."""
    args: list[Any] = []
    where = filters.where(args)
    args.append(position)
    where.append(f"seq > ${len(args)}")
    sql = "SELECT * FROM stored_events WHERE " + " AND ".join(where)
    return list(await db.fetch(sql + f" ORDER BY seq LIMIT {int(limit)}", *args))


async def count(db: Any, filters: Filters) -> int:
    args: list[Any] = []
    where = filters.where(args)
    sql = "SELECT count(*) FROM stored_events" + (" WHERE " + " AND ".join(where) if where else "")
    return int(await db.fetchval(sql, *args))


async def last_position(db: Any) -> int:
    return int(await db.fetchval("SELECT coalesce(max(seq), 0) FROM stored_events"))


async def get(db: Any, event_id: str) -> StoredEvent | None:
    r = await db.fetchrow("SELECT * FROM stored_events WHERE id = $1", event_id)
    return None if r is None else stored(r)


async def counts_by_type(db: Any, window: int) -> list[TypeCount]:
    """Events per type and source stored in the last ``window`` seconds."""
    rows = await db.fetch(
        """SELECT type, source, count(*) AS n FROM stored_events
           WHERE stored_at >= now() - make_interval(secs => $1)
           GROUP BY type, source ORDER BY n DESC, type""",
        window,
    )
    return [TypeCount(type=r["type"], source=r["source"], count=r["n"]) for r in rows]
