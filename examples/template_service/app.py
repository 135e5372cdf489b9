"""The TracSeq template service: sample-sheet templates, versions and sheet validation.

    TRACSEQ_TEMPLATE_POSTGRES_DSN=postgresql://... python -m examples.template_service.app

Every state change writes its CloudEvent through the outbox in the same transaction;
with ``TRACSEQ_TEMPLATE_KAFKA_BOOTSTRAP`` set, the outbox relay publishes them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from pydantic import SecretStr

from tracseq_kit import SheetError, SheetTooLargeError
from tracseq_kit.db import apply_migrations
from tracseq_kit.events import CloudEvent, Outbox, migrate, running_relay
from tracseq_kit.schemas import (
    SubmissionReport,
    Template,
    TemplateCategory,
    TemplateCreate,
    TemplatePage,
    TemplateStatus,
    TemplateUpdate,
)
from tracseq_kit.service import create_service, postgres_pool
from tracseq_kit.settings import ServiceSettings
from tracseq_kit.sheets import read_sheet, validate_sheet

MIGRATIONS = FilePath(__file__).with_name("migrations")
TOPIC = "tracseq.templates"
SOURCE = "/template-service"


class TemplateServiceSettings(ServiceSettings, env_prefix="TRACSEQ_TEMPLATE_"):
    """``TRACSEQ_TEMPLATE_*`` variables."""

    service_name: str = "template_service"
    port: int = 8083
    postgres_dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/postgres")
    kafka_bootstrap: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    max_sheet_rows: int = 50_000


def _pool(request: Request) -> Any:
    return request.app.state.resources["postgres"]


# Module level: FastAPI resolves these annotations by name.
Pool = Annotated[Any, Depends(_pool)]
Actor = Annotated[str | None, Header(alias="x-tracseq-identity-subject")]
"""Who acts: the subject the gateway authenticated and forwarded."""


IdempotencyKey = Annotated[
    str | None, Header(alias="idempotency-key", min_length=1, max_length=200)
]
"""A client's key for one logical write: retries with it have a single effect."""


async def _replayed(conn: Any, key: str | None, request: str) -> Template | None:
    """Claim ``key`` for ``request`` in this transaction; if it was used before,
    return the response it got. A concurrent twin waits for the first to commit."""
    if key is None:
        return None
    fresh = await conn.fetchval(
        """INSERT INTO idempotency_keys (key, request) VALUES ($1, $2)
           ON CONFLICT (key) DO NOTHING RETURNING true""",
        key,
        request,
    )
    if fresh:
        return None
    stored = await conn.fetchrow(
        "SELECT request, response FROM idempotency_keys WHERE key = $1", key
    )
    if stored["request"] != request:
        raise HTTPException(422, "this Idempotency-Key was already used for another request")
    return Template.model_validate_json(stored["response"])


async def _remember(conn: Any, key: str | None, template: Template) -> None:
    if key is not None:
        await conn.execute(
            "UPDATE idempotency_keys SET response = $2::jsonb WHERE key = $1",
            key,
            template.model_dump_json(),
        )


def _request_id(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


async def _upload(request: Request) -> bytes:
    """The sheet: the raw body, or the ``file`` part of a multipart form."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(422, "the multipart form needs a 'file' part with the sheet")
        return await upload.read()
    return await request.body()


def _definition_json(t: TemplateCreate) -> tuple[str, str]:
    """The ``fields`` and ``cross_field_rules`` columns, as JSON."""
    return (
        json.dumps([f.model_dump(mode="json") for f in t.fields]),
        json.dumps([c.model_dump(mode="json") for c in t.cross_field_rules]),
    )


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


def _event(kind: str, template: Template, **extra: Any) -> CloudEvent[Any]:
    return CloudEvent[Any](
        source=SOURCE,
        type=f"tracseq.template.{kind}",
        subject=template.id,
        data={
            "template_id": template.id,
            "name": template.name,
            "status": template.status,
            "version": template.version,
            **extra,
        },
    )


def create_app(settings: TemplateServiceSettings | None = None) -> FastAPI:
    """The template service as an ASGI app (resources open in its lifespan)."""
    settings = settings or TemplateServiceSettings()
    outbox = Outbox()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = app.state.resources["postgres"]
        async with pool.acquire() as conn:
            await apply_migrations(conn, MIGRATIONS, namespace="template_service")
            await migrate(conn)
        if settings.kafka_bootstrap is None:
            yield
            return
        async with running_relay(pool, settings.kafka_bootstrap):
            yield

    app = create_service(
        settings,
        resources=[postgres_pool(settings.postgres_dsn, min_size=1, max_size=10)],
        lifespan=lifespan,
        title="TracSeq template service",
    )

    async def load(conn: Any, template_id: str, *, lock: bool = False) -> Template:
        r = await conn.fetchrow(
            "SELECT * FROM templates WHERE id = $1" + (" FOR UPDATE" if lock else ""), template_id
        )
        if r is None:
            raise HTTPException(404, f"template {template_id!r} not found")
        return _row(r)

    @app.post("/api/templates", status_code=201, response_model=Template)
    async def create_template(
        body: TemplateCreate, db: Pool, actor: Actor = None, key: IdempotencyKey = None
    ) -> Template:
        async with db.acquire() as conn, conn.transaction():
            previous = await _replayed(conn, key, _request_id("create", body.model_dump_json()))
            if previous is not None:
                return previous
            r = await conn.fetchrow(
                """INSERT INTO templates (id, name, description, category, tags, fields,
                       cross_field_rules, created_by, updated_by)
                   VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $8) RETURNING *""",
                f"tpl-{uuid.uuid4().hex[:12]}",
                body.name,
                body.description,
                body.category,
                body.tags,
                *_definition_json(body),
                actor,
            )
            template = _row(r)
            await outbox.add(conn, TOPIC, _event("created", template))
            await _remember(conn, key, template)
        return template

    @app.get("/api/templates", response_model=TemplatePage)
    async def list_templates(
        db: Pool,
        status: TemplateStatus | None = None,
        category: TemplateCategory | None = None,
        tag: str | None = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: str | None = None,
    ) -> TemplatePage:
        where, args = [], []

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
            pattern = arg(
                "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            where.append(f"(name ILIKE {pattern} OR description ILIKE {pattern})")
        if cursor:
            try:
                created_text, last_id = json.loads(bytes.fromhex(cursor))
                created_at = datetime.fromisoformat(created_text)
            except (ValueError, TypeError):
                raise HTTPException(400, "invalid cursor") from None
            where.append(f"(created_at, id) < ({arg(created_at)}, {arg(str(last_id))})")
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

    @app.get("/api/templates/{template_id}", response_model=Template)
    async def get_template(template_id: str, db: Pool) -> Template:
        async with db.acquire() as conn:
            return await load(conn, template_id)

    @app.patch("/api/templates/{template_id}", response_model=Template)
    async def update_template(
        template_id: str,
        body: TemplateUpdate,
        db: Pool,
        actor: Actor = None,
        key: IdempotencyKey = None,
    ) -> Template:
        changes = body.model_dump(exclude_unset=True, mode="json")
        async with db.acquire() as conn, conn.transaction():
            previous = await _replayed(
                conn, key, _request_id("update", template_id, json.dumps(changes, sort_keys=True))
            )
            if previous is not None:
                return previous
            current = await load(conn, template_id, lock=True)
            if current.status in (TemplateStatus.ARCHIVED, TemplateStatus.DEPRECATED):
                raise HTTPException(409, f"template is {current.status}; clone it to make changes")
            # Editing a published template starts the draft of its next version; the
            # published versions stay frozen in template_versions.
            merged = current.model_dump(mode="json") | changes
            check = TemplateCreate.model_validate(
                {k: merged[k] for k in TemplateCreate.model_fields}
            )
            r = await conn.fetchrow(
                """UPDATE templates SET name=$2, description=$3, category=$4, tags=$5,
                       fields=$6::jsonb, cross_field_rules=$7::jsonb, updated_by=$8,
                       status='draft', updated_at=now() WHERE id=$1 RETURNING *""",
                template_id,
                check.name,
                check.description,
                check.category,
                check.tags,
                *_definition_json(check),
                actor,
            )
            template = _row(r)
            await outbox.add(conn, TOPIC, _event("updated", template, changed=sorted(changes)))
            await _remember(conn, key, template)
        return template

    @app.post("/api/templates/{template_id}/publish", response_model=Template)
    async def publish_template(
        template_id: str, db: Pool, actor: Actor = None, key: IdempotencyKey = None
    ) -> Template:
        async with db.acquire() as conn, conn.transaction():
            previous = await _replayed(conn, key, _request_id("publish", template_id))
            if previous is not None:
                return previous
            current = await load(conn, template_id, lock=True)
            if current.status in (TemplateStatus.ARCHIVED, TemplateStatus.DEPRECATED):
                raise HTTPException(409, f"template is {current.status}")
            if not current.fields:
                raise HTTPException(422, "a template needs at least one field to be published")
            version = current.version + 1
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
            await outbox.add(conn, TOPIC, _event("published", template))
            await _remember(conn, key, template)
        return template

    async def set_status(
        template_id: str,
        to: TemplateStatus,
        db: Any,
        actor: str | None,
        key: str | None,
        *,
        allowed_from: tuple[TemplateStatus, ...] | None = None,
    ) -> Template:
        """Move a template to ``to`` (once per idempotency key) and emit its event."""
        async with db.acquire() as conn, conn.transaction():
            previous = await _replayed(conn, key, _request_id(to.value, template_id))
            if previous is not None:
                return previous
            current = await load(conn, template_id, lock=True)
            if allowed_from is not None and current.status not in allowed_from:
                raise HTTPException(409, f"a {current.status} template cannot become {to.value}")
            r = await conn.fetchrow(
                """UPDATE templates SET status=$3, updated_by=$2, updated_at=now()
                   WHERE id=$1 RETURNING *""",
                template_id,
                actor,
                to.value,
            )
            template = _row(r)
            await outbox.add(conn, TOPIC, _event(to.value, template))
            await _remember(conn, key, template)
        return template

    @app.post("/api/templates/{template_id}/archive", response_model=Template)
    async def archive_template(
        template_id: str, db: Pool, actor: Actor = None, key: IdempotencyKey = None
    ) -> Template:
        """Archive a template: still readable, no longer offered."""
        return await set_status(template_id, TemplateStatus.ARCHIVED, db, actor, key)

    @app.post("/api/templates/{template_id}/deprecate", response_model=Template)
    async def deprecate_template(
        template_id: str, db: Pool, actor: Actor = None, key: IdempotencyKey = None
    ) -> Template:
        """Mark a published template as deprecated: still readable, no longer advised."""
        return await set_status(
            template_id,
            TemplateStatus.DEPRECATED,
            db,
            actor,
            key,
            allowed_from=(TemplateStatus.PUBLISHED,),
        )

    @app.post("/api/templates/{template_id}/clone", status_code=201, response_model=Template)
    async def clone_template(
        template_id: str, db: Pool, actor: Actor = None, key: IdempotencyKey = None
    ) -> Template:
        async with db.acquire() as conn:
            source = await load(conn, template_id)
        body = TemplateCreate(
            name=f"{source.name} (copy)",
            description=source.description,
            category=source.category,
            tags=source.tags,
            fields=source.fields,
            cross_field_rules=source.cross_field_rules,
        )
        return await create_template(body, db, actor, key)

    @app.get("/api/templates/{template_id}/versions", response_model=list[Template])
    async def list_versions(template_id: str, db: Pool) -> list[Template]:
        async with db.acquire() as conn:
            await load(conn, template_id)
            rows = await conn.fetch(
                "SELECT snapshot FROM template_versions WHERE template_id=$1 ORDER BY version",
                template_id,
            )
        return [Template.model_validate_json(r["snapshot"]) for r in rows]

    @app.get("/api/templates/{template_id}/versions/{version}", response_model=Template)
    async def get_version(
        template_id: str, version: Annotated[int, Path(ge=1, le=2**31 - 1)], db: Pool
    ) -> Template:
        snapshot = await db.fetchval(
            "SELECT snapshot FROM template_versions WHERE template_id=$1 AND version=$2",
            template_id,
            version,
        )
        if snapshot is None:
            raise HTTPException(404, f"template {template_id!r} has no version {version}")
        return Template.model_validate_json(snapshot)

    @app.post("/api/templates/{template_id}/validate", response_model=SubmissionReport)
    async def validate_submission(
        template_id: str,
        request: Request,
        db: Pool,
        version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
        include_rows: bool = True,
    ) -> SubmissionReport:
        """Validate a CSV or XLSX sheet: the raw body, or the multipart part "file"."""
        if version is None:  # the latest published version, else the draft
            version = await db.fetchval(
                "SELECT max(version) FROM template_versions WHERE template_id = $1", template_id
            )
        template = (
            await get_version(template_id, version, db)
            if version
            else await get_template(template_id, db)
        )
        data = await _upload(request)
        try:
            sheet = read_sheet(
                data, max_bytes=settings.max_body_bytes, max_rows=settings.max_sheet_rows
            )
        except SheetTooLargeError as exc:
            raise HTTPException(413, str(exc)) from None
        except SheetError as exc:
            raise HTTPException(422, str(exc)) from None
        report = validate_sheet(
            template.fields,
            sheet,
            cross_field_rules=template.cross_field_rules,
            include_rows=include_rows,
        )
        async with db.acquire() as conn, conn.transaction():
            await outbox.add(
                conn,
                TOPIC,
                _event(
                    "submission.validated",
                    template,
                    rows=report.rows_checked,
                    problems=len(report.problems) + len(report.header_problems),
                    valid=report.valid,
                ),
            )
        return report

    return app


if __name__ == "__main__":
    from tracseq_kit.service import run_service

    run_service(create_app())
