"""The template service's SQL: templates (drafts edited in place) and their frozen
published versions. Every function takes a connection or the pool; none decides rules."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from tracseq_kit.schemas import (
    Template,
    TemplateCategory,
    TemplateCreate,
    TemplatePage,
    TemplateStatus,
)

DEFINITION = ("name", "description", "category", "tags", "fields", "cross_field_rules")
"""What a published version freezes (and what "nothing changed" compares)."""


def _row(r: Any) -> Template:
    return Template(
        id=r["id"],
        name=r["name"],
        description=r["description"],
        category=r["category"],
        tags=list(r["tags"]),
        status=r["status"],
        version=r["version"],
        fields=json.loads(r["fields"]),
        cross_field_rules=json.loads(r["cross_field_rules"]),
        created_by=r["created_by"],
        created_at=r["created_at"],
        updated_by=r["updated_by"],
        updated_at=r["updated_at"],
    )


def _columns(t: TemplateCreate) -> tuple[Any, ...]:
    """name, description, category, tags, fields and cross_field_rules, as stored."""
    return (
        t.name,
        t.description,
        t.category,
        t.tags,
        json.dumps([f.model_dump(mode="json") for f in t.fields]),
        json.dumps([c.model_dump(mode="json") for c in t.cross_field_rules]),
    )


def definition(template: Template | TemplateCreate) -> dict[str, Any]:
    """The parts of a template a version freezes, as JSON-ready data."""
    return template.model_dump(mode="json", include=set(DEFINITION))


async def insert(conn: Any, body: TemplateCreate, actor: str) -> Template:
    """A new draft."""
    r = await conn.fetchrow(
        """INSERT INTO templates (id, name, description, category, tags, fields,
               cross_field_rules, created_by, updated_by)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $8) RETURNING *""",
        f"tpl-{uuid.uuid4().hex[:12]}",
        *_columns(body),
        actor,
    )
    return _row(r)


async def get(db: Any, template_id: str, *, lock: bool = False) -> Template | None:
    """The template, or None; ``lock`` holds its row until the transaction ends."""
    r = await db.fetchrow(
        "SELECT * FROM templates WHERE id = $1" + (" FOR UPDATE" if lock else ""), template_id
    )
    return None if r is None else _row(r)


async def page(
    db: Any,
    *,
    status: TemplateStatus | None,
    category: TemplateCategory | None,
    tag: str | None,
    q: str | None,
    limit: int,
    cursor: str | None,
) -> TemplatePage:
    """One page, newest first (keyset pagination). Raises ``ValueError`` for a cursor
    this function did not make."""
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if status:
        where.append(f"status = {arg(status.value)}")
    if category:
        where.append(f"category = {arg(category.value)}")
    if tag:
        where.append(f"{arg(tag)} = ANY(tags)")
    if q:
        pattern = arg("%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
        where.append(f"(name ILIKE {pattern} OR description ILIKE {pattern})")
    if cursor:
        created_text, last_id = json.loads(bytes.fromhex(cursor))
        where.append(
            f"(created_at, id) < ({arg(datetime.fromisoformat(created_text))}, {arg(str(last_id))})"
        )
    sql = "SELECT * FROM templates"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY created_at DESC, id DESC LIMIT {arg(limit + 1)}"
    rows = await db.fetch(sql, *args)
    items = [_row(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = json.dumps([last["created_at"].isoformat(), last["id"]]).encode().hex()
    return TemplatePage(items=items, next_cursor=next_cursor)


async def update_draft(conn: Any, template_id: str, body: TemplateCreate, actor: str) -> Template:
    """Replace the definition; the template becomes (or stays) a draft."""
    r = await conn.fetchrow(
        """UPDATE templates SET name=$2, description=$3, category=$4, tags=$5,
               fields=$6::jsonb, cross_field_rules=$7::jsonb, updated_by=$8,
               status='draft', updated_at=now() WHERE id=$1 RETURNING *""",
        template_id,
        *_columns(body),
        actor,
    )
    return _row(r)


async def set_status(conn: Any, template_id: str, status: TemplateStatus, actor: str) -> Template:
    r = await conn.fetchrow(
        """UPDATE templates SET status=$3, updated_by=$2, updated_at=now()
           WHERE id=$1 RETURNING *""",
        template_id,
        actor,
        status.value,
    )
    return _row(r)


async def publish(conn: Any, template_id: str, version: int, actor: str) -> Template:
    """Mark published as ``version`` and freeze that version's snapshot."""
    r = await conn.fetchrow(
        """UPDATE templates SET status='published', version=$2, updated_by=$3,
               updated_at=now() WHERE id=$1 RETURNING *""",
        template_id,
        version,
        actor,
    )
    template = _row(r)
    await conn.execute(
        """INSERT INTO template_versions (template_id, version, snapshot, published_by)
           VALUES ($1, $2, $3::jsonb, $4)""",
        template_id,
        version,
        template.model_dump_json(),
        actor,
    )
    return template


async def version(db: Any, template_id: str, number: int) -> Template | None:
    """Published version ``number``, or None."""
    snapshot = await db.fetchval(
        "SELECT snapshot FROM template_versions WHERE template_id=$1 AND version=$2",
        template_id,
        number,
    )
    return None if snapshot is None else Template.model_validate_json(snapshot)


async def latest_version(db: Any, template_id: str) -> int | None:
    """The number of the latest published version, or None."""
    number: int | None = await db.fetchval(
        "SELECT max(version) FROM template_versions WHERE template_id = $1", template_id
    )
    return number


async def versions(db: Any, template_id: str) -> list[Template]:
    """Every published version, oldest first."""
    rows = await db.fetch(
        "SELECT snapshot FROM template_versions WHERE template_id=$1 ORDER BY version",
        template_id,
    )
    return [Template.model_validate_json(r["snapshot"]) for r in rows]
