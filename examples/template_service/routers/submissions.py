"""``/api/templates/{id}/validate``: check a sample sheet against a template version."""

from __future__ import annotations

from typing import Annotated

from examples.template_service import store
from examples.template_service.deps import Postgres, Reader, Settings
from examples.template_service.events import TOPIC, template_event
from fastapi import APIRouter, HTTPException, Query, Request

from tracseq_kit import SheetError, SheetTooLargeError
from tracseq_kit.events import Outbox
from tracseq_kit.schemas import SubmissionReport, Template
from tracseq_kit.service import problems
from tracseq_kit.sheets import read_sheet, validate_sheet

router = APIRouter(prefix="/api/templates/{template_id}", tags=["submissions"])
outbox = Outbox()


async def _upload(request: Request) -> bytes:
    """The sheet: the raw body, or the ``file`` part of a multipart form."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(422, "the multipart form needs a 'file' part with the sheet")
        return await upload.read()
    return await request.body()


async def _template(db: Postgres, template_id: str, version: int | None) -> Template:
    """Version ``version``; by default the latest published one, else the draft."""
    number = version if version is not None else await store.latest_version(db, template_id)
    found = (
        await store.version(db, template_id, number) if number else await store.get(db, template_id)
    )
    if found is None:
        what = f"version {number} of " if number else ""
        raise HTTPException(404, f"{what}template {template_id!r} not found")
    return found


@router.post(
    "/validate",
    response_model=SubmissionReport,
    responses=problems(404),
    openapi_extra={
        "requestBody": {
            "description": "A CSV or XLSX sheet: the raw file (any content type, e.g. "
            "text/csv), or the part ``file`` of a multipart form.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                },
            },
            "required": True,
        }
    },
)
async def validate_submission(
    template_id: str,
    request: Request,
    db: Postgres,
    settings: Settings,
    who: Reader,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    include_rows: bool = True,
) -> SubmissionReport:
    """Validate a CSV or XLSX sheet: the raw body, or the multipart part ``file``; 413 over
    the size or row limits, 422 for a file that cannot be read. Checking a sheet only
    reads the template, so ``templates:read`` is enough."""
    template = await _template(db, template_id, version)
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
        event = template_event(
            "submission.validated",
            template,
            who.subject,
            rows=report.rows_checked,
            problems=len(report.problems) + len(report.header_problems),
            valid=report.valid,
        )
        await outbox.add(conn, TOPIC, event)
    return report
