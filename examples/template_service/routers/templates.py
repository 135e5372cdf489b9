"""``/api/templates``: create, list, read, change, and move through the lifecycle.

The lifecycle (each step is one transaction: the change, its event in the outbox, and
the response remembered for its ``Idempotency-Key``)::

    draft --publish--> published --deprecate--> deprecated
      ^                    |                        |
      +------PATCH---------+                        |
    draft | published | deprecated --archive--> archived

A step that would change nothing (publish with nothing changed since the last version,
archive an archived template, deprecate a deprecated one) is a 409 naming the current
state, and emits no event.
"""

from __future__ import annotations

from typing import Annotated, Any

from examples.template_service import store
from examples.template_service.deps import READ, Postgres, Writer
from examples.template_service.events import TOPIC, template_event
from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from tracseq_kit.events import Outbox
from tracseq_kit.schemas import (
    Template,
    TemplateCategory,
    TemplateCreate,
    TemplatePage,
    TemplateStatus,
    TemplateUpdate,
)
from tracseq_kit.service import Idempotent, IdempotentWrite, problems

router = APIRouter(prefix="/api/templates", tags=["templates"])
outbox = Outbox()

# What an explicit null in a PATCH clears an optional part of the definition to.
CLEARED: dict[str, Any] = {"description": "", "tags": [], "fields": [], "cross_field_rules": []}
FROZEN = (TemplateStatus.ARCHIVED, TemplateStatus.DEPRECATED)


async def _load(conn: Any, template_id: str, *, lock: bool = False) -> Template:
    template = await store.get(conn, template_id, lock=lock)
    if template is None:
        raise HTTPException(404, f"template {template_id!r} not found")
    return template


async def _create(
    conn: Any, body: TemplateCreate, actor: str, write: IdempotentWrite, response: Response
) -> Template:
    template = await store.insert(conn, body, actor)
    await outbox.add(conn, TOPIC, template_event("created", template, actor))
    response.headers["Location"] = f"{router.prefix}/{template.id}"
    await write.remember(conn, template, headers=dict(response.headers))
    return template


@router.post("", status_code=201, response_model=Template)
async def create_template(
    body: TemplateCreate, db: Postgres, write: Idempotent, response: Response, who: Writer
) -> Template:
    """Create a draft (``Location`` names it)."""
    async with db.acquire() as conn, conn.transaction():
        await write.begin(conn)
        return await _create(conn, body, who.subject, write, response)


@router.get("", response_model=TemplatePage, dependencies=[READ])
async def list_templates(
    db: Postgres,
    status: TemplateStatus | None = None,
    category: TemplateCategory | None = None,
    tag: str | None = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> TemplatePage:
    """Templates, newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
    try:
        return await store.page(
            db, status=status, category=category, tag=tag, q=q, limit=limit, cursor=cursor
        )
    except (ValueError, TypeError):
        raise HTTPException(400, "invalid cursor: pass back a next_cursor unchanged") from None


@router.get("/{template_id}", response_model=Template, responses=problems(404), dependencies=[READ])
async def get_template(template_id: str, db: Postgres) -> Template:
    """One template."""
    return await _load(db, template_id)


def _merged(current: Template, body: TemplateUpdate) -> TemplateCreate:
    """The new definition: given fields replace, an explicit null clears an optional one."""
    changes = body.model_dump(exclude_unset=True, mode="json")
    cleared = {k: CLEARED[k] for k, v in changes.items() if v is None}
    try:
        return TemplateCreate.model_validate(store.definition(current) | changes | cleared)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None


@router.patch("/{template_id}", response_model=Template, responses=problems(404, 409))
async def update_template(
    template_id: str, body: TemplateUpdate, db: Postgres, write: Idempotent, who: Writer
) -> Template:
    """Change the definition. Given fields replace; ``null`` clears ``description``,
    ``tags``, ``fields`` or ``cross_field_rules`` (``name`` and ``category`` cannot be
    null). On a published template this starts the draft of its next version."""
    async with db.acquire() as conn, conn.transaction():
        await write.begin(conn)
        current = await _load(conn, template_id, lock=True)
        if current.status in FROZEN:
            raise HTTPException(409, f"template is {current.status}; clone it to make changes")
        new = _merged(current, body)
        template = current
        if store.definition(new) != store.definition(current):
            template = await store.update_draft(conn, template_id, new, who.subject)
            changed = sorted(body.model_dump(exclude_unset=True))
            await outbox.add(
                conn, TOPIC, template_event("updated", template, who.subject, changed=changed)
            )
        await write.remember(conn, template)
    return template


@router.post("/{template_id}/publish", response_model=Template, responses=problems(404, 409))
async def publish_template(
    template_id: str, db: Postgres, write: Idempotent, who: Writer
) -> Template:
    """Freeze the draft as the next numbered version."""
    async with db.acquire() as conn, conn.transaction():
        await write.begin(conn)
        current = await _load(conn, template_id, lock=True)
        if current.status in FROZEN:
            raise HTTPException(409, f"template is {current.status}")
        if current.status == TemplateStatus.PUBLISHED:
            raise HTTPException(409, f"template is already published as version {current.version}")
        if not current.fields:
            raise HTTPException(409, "a template without fields cannot be published; add one")
        last = await store.version(conn, template_id, current.version)
        if last is not None and store.definition(last) == store.definition(current):
            raise HTTPException(409, f"nothing changed since version {current.version}")
        template = await store.publish(conn, template_id, current.version + 1, who.subject)
        await outbox.add(conn, TOPIC, template_event("published", template, who.subject))
        await write.remember(conn, template)
    return template


async def _move(
    db: Any,
    template_id: str,
    to: TemplateStatus,
    allowed_from: tuple[TemplateStatus, ...],
    actor: str,
    write: IdempotentWrite,
) -> Template:
    """Move a template to ``to`` from one of ``allowed_from``, with its event."""
    async with db.acquire() as conn, conn.transaction():
        await write.begin(conn)
        current = await _load(conn, template_id, lock=True)
        if current.status == to:
            raise HTTPException(409, f"template is already {to.value}")
        if current.status not in allowed_from:
            raise HTTPException(409, f"a {current.status} template cannot become {to.value}")
        template = await store.set_status(conn, template_id, to, actor)
        await outbox.add(conn, TOPIC, template_event(to.value, template, actor))
        await write.remember(conn, template)
    return template


@router.post("/{template_id}/archive", response_model=Template, responses=problems(404, 409))
async def archive_template(
    template_id: str, db: Postgres, write: Idempotent, who: Writer
) -> Template:
    """Archive a template: still readable, no longer offered."""
    allowed = (TemplateStatus.DRAFT, TemplateStatus.PUBLISHED, TemplateStatus.DEPRECATED)
    return await _move(db, template_id, TemplateStatus.ARCHIVED, allowed, who.subject, write)


@router.post("/{template_id}/deprecate", response_model=Template, responses=problems(404, 409))
async def deprecate_template(
    template_id: str, db: Postgres, write: Idempotent, who: Writer
) -> Template:
    """Mark a published template as deprecated: still readable, no longer advised."""
    allowed = (TemplateStatus.PUBLISHED,)
    return await _move(db, template_id, TemplateStatus.DEPRECATED, allowed, who.subject, write)


@router.post(
    "/{template_id}/clone", status_code=201, response_model=Template, responses=problems(404)
)
async def clone_template(
    template_id: str, db: Postgres, write: Idempotent, response: Response, who: Writer
) -> Template:
    """Copy a template (any status) as a new draft."""
    async with db.acquire() as conn, conn.transaction():
        await write.begin(conn)
        source = await _load(conn, template_id)
        body = TemplateCreate.model_validate(
            store.definition(source) | {"name": f"{source.name} (copy)"[:200]}
        )
        return await _create(conn, body, who.subject, write, response)
