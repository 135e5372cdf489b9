"""Every API operation described once (path, body, parser), for both clients."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, Any, TypeAlias
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter, ValidationError

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit._resend import IDEMPOTENT_METHODS
from tracseq_kit.client._base import Call, Progress
from tracseq_kit.events import CloudEvent
from tracseq_kit.schemas import (
    EventAccepted,
    EventPage,
    FieldDefinition,
    HealthStatus,
    ReplayJob,
    ReplayRequest,
    StoredEvent,
    SubmissionReport,
    Template,
    TemplateCategory,
    TemplateCreate,
    TemplatePage,
    TemplateStatus,
    TemplateUpdate,
    TypeCount,
)

__all__ = ["SheetInput"]

SheetInput: TypeAlias = str | os.PathLike[str] | bytes | IO[bytes]
"""A sample sheet: a path, its bytes, or a binary file object (CSV or XLSX)."""

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# Responses ignore attributes a newer server adds, in nested models too (FieldDefinition
# forbids unknown keys in requests, where they are typos).
TEMPLATE = partial(Template.model_validate_json, extra="ignore")
TEMPLATES = partial(TypeAdapter(list[Template]).validate_json, extra="ignore")
TEMPLATE_PAGE = partial(TemplatePage.model_validate_json, extra="ignore")
REPORT = partial(SubmissionReport.model_validate_json, extra="ignore")
EVENT = partial(StoredEvent.model_validate_json, extra="ignore")
EVENT_PAGE = partial(EventPage.model_validate_json, extra="ignore")
ACCEPTED = partial(EventAccepted.model_validate_json, extra="ignore")
JOB = partial(ReplayJob.model_validate_json, extra="ignore")
STATS = partial(TypeAdapter(list[TypeCount]).validate_json, extra="ignore")
HEALTH_BODY = TypeAdapter(dict[str, Any]).validate_json


def _id(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"an id must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def _model(value: Any, model: type[BaseModel], what: str) -> Any:
    if isinstance(value, model):
        return value
    if isinstance(value, Mapping):
        try:
            return model.model_validate(dict(value))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
                for error in exc.errors()
            )
            raise ConfigurationError(f"invalid {what}: {problems}") from None
    raise ConfigurationError(f"{what} must be a {model.__name__} or a dict, got {value!r}")


# -- templates --------------------------------------------------------------------------


def list_templates(
    *,
    status: TemplateStatus | str | None,
    category: TemplateCategory | str | None,
    tag: str | None,
    q: str | None,
    page_size: int,
    cursor: str | None,
) -> Call:
    if not 1 <= page_size <= 200:
        raise ConfigurationError(f"page_size must be 1..200, got {page_size}")
    params = {"status": status, "category": category, "tag": tag, "q": q}
    return Call("GET", "/api/templates", {**params, "limit": page_size, "cursor": cursor})


def page(first: Call, cursor: str | None) -> Call:
    """The listing ``first`` continued at ``cursor``."""
    return replace(first, params={**(first.params or {}), "cursor": cursor})


def get_template(template_id: str, version: int | None) -> Call:
    path = f"/api/templates/{_id(template_id)}"
    return Call("GET", path if version is None else f"{path}/versions/{int(version)}")


def create_template(template: TemplateCreate | Mapping[str, Any]) -> Call:
    body = _model(template, TemplateCreate, "template")
    return Call("POST", "/api/templates", body=body, write=True)


def update_template(template_id: str, changes: TemplateUpdate | Mapping[str, Any]) -> Call:
    body = _model(changes, TemplateUpdate, "changes")
    return Call("PATCH", f"/api/templates/{_id(template_id)}", body=body, write=True)


def template_action(template_id: str, action: str) -> Call:
    """publish, archive, deprecate, clone."""
    return Call("POST", f"/api/templates/{_id(template_id)}/{action}", write=True)


def list_versions(template_id: str) -> Call:
    return Call("GET", f"/api/templates/{_id(template_id)}/versions")


def with_field(template: Template, field: FieldDefinition | Mapping[str, Any]) -> Call:
    new = _model(field, FieldDefinition, "field")
    if any(f.name == new.name for f in template.fields):
        raise ConfigurationError(
            f"template {template.id!r} already has a field {new.name!r}; use update_field"
        )
    return update_template(template.id, TemplateUpdate(fields=[*template.fields, new]))


def with_field_changed(template: Template, name: str, changes: Mapping[str, Any]) -> Call:
    fields = list(template.fields)
    for i, f in enumerate(fields):
        if f.name == name:
            fields[i] = FieldDefinition.model_validate(f.model_dump() | dict(changes))
            return update_template(template.id, TemplateUpdate(fields=fields))
    known = ", ".join(f.name for f in fields) or "none"
    raise ConfigurationError(f"template {template.id!r} has no field {name!r} (fields: {known})")


def validate_submission(
    template_id: str,
    sheet: SheetInput | None,
    rows: Iterable[Mapping[str, Any]] | None,
    *,
    version: int | None,
    include_rows: bool,
    progress: Progress | None = None,
) -> Call:
    content, content_type = sheet_body(sheet, rows)
    params = {"version": version, "include_rows": str(include_rows).lower()}
    return Call(
        "POST",
        f"/api/templates/{_id(template_id)}/validate",
        params,
        content=content,
        content_type=content_type,
        progress=progress,
    )


def sheet_body(
    sheet: SheetInput | None, rows: Iterable[Mapping[str, Any]] | None
) -> tuple[bytes, str]:
    """The upload's bytes and content type, from a path, bytes, a file or rows."""
    if (sheet is None) == (rows is None):
        raise ConfigurationError("give exactly one of a sheet (path, bytes, file) or rows")
    if rows is not None:
        return _rows_csv(rows), "text/csv"
    if isinstance(sheet, bytes):
        data = sheet
    elif isinstance(sheet, str | os.PathLike):
        path = Path(sheet)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the sheet {str(path)!r}: {exc.strerror}"
            ) from None
    elif sheet is not None and hasattr(sheet, "read"):
        data = sheet.read()
        if not isinstance(data, bytes):
            raise ConfigurationError("open the sheet in binary mode ('rb')")
    else:
        raise ConfigurationError(f"a sheet is a path, bytes or a binary file, got {sheet!r}")
    return data, XLSX if data[:4] == b"PK\x03\x04" else "text/csv"


def _rows_csv(rows: Iterable[Mapping[str, Any]]) -> bytes:
    materialised = [dict(r) for r in rows]
    columns: dict[str, None] = {}
    for r in materialised:
        columns.update(dict.fromkeys(r))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for r in materialised:
        writer.writerow({k: "" if v is None else v for k, v in r.items()})
    return out.getvalue().encode()


# -- events -----------------------------------------------------------------------------


def query_events(
    *,
    type: str | None,
    source: str | None,
    subject: str | None,
    since: datetime | None,
    until: datetime | None,
    page_size: int,
    cursor: str | None,
) -> Call:
    if not 1 <= page_size <= 500:
        raise ConfigurationError(f"page_size must be 1..500, got {page_size}")
    params = {"type": type, "source": source, "subject": subject, "since": since, "until": until}
    return Call("GET", "/api/events", {**params, "limit": page_size, "cursor": cursor})


def get_event(event_id: str) -> Call:
    return Call("GET", f"/api/events/{_id(event_id)}")


def publish_event(
    event: CloudEvent[Any] | None,
    *,
    type: str | None,
    source: str | None,
    data: Any,
    subject: str | None,
) -> Call:
    """The event's id makes the publish idempotent: a retry is stored once."""
    if event is None:
        if not type or not source:
            raise ConfigurationError("publish needs an event, or both type= and source=")
        fields = {"type": type, "source": source, "subject": subject, "data": data}
        event = _model(fields, CloudEvent[Any], "event")
    elif type or source or data is not None or subject:
        raise ConfigurationError("give either an event or type=/source=/data=/subject=")
    body = event.model_dump(mode="json", exclude_none=True)
    return Call("POST", "/api/events", body=body)


def start_replay(target_topic: str, **filters: Any) -> Call:
    request = _model({"target_topic": target_topic, **filters}, ReplayRequest, "replay request")
    # The Idempotency-Key makes a retry return the job the first attempt started.
    return Call("POST", "/api/events/replay", body=request, write=True)


def get_replay(job_id: str) -> Call:
    return Call("GET", f"/api/events/replay/{_id(job_id)}")


def event_stats(window: float) -> Call:
    return Call("GET", "/api/events/stats", {"window": int(window)})


def tail_events(
    *, type: str | None, source: str | None, subject: str | None, last_event_id: str | None
) -> Call:
    headers = {"accept": "text/event-stream", "cache-control": "no-store"}
    if last_event_id:
        headers["last-event-id"] = last_event_id
    params = {"type": type, "source": source, "subject": subject}
    return Call("GET", "/api/events/stream", params, headers=headers)


def raw(
    method: str,
    path: str,
    *,
    params: Mapping[str, Any] | None,
    json: Any,
    content: bytes | None,
    headers: Mapping[str, str] | None,
    write: bool | None,
) -> Call:
    """Any request (``client.request``): a write unless GET/HEAD or ``write=False``."""
    method = method.upper()
    is_write = method not in ("GET", "HEAD") if write is None else write
    return Call(
        method,
        path,
        params,
        json,
        content,
        write=is_write,
        # without a key, only a method that is idempotent by definition is resent after
        # the request may have arrived
        replay_safe=is_write or method in IDEMPOTENT_METHODS,
        headers=headers,
    )


def health() -> Call:
    return Call("GET", "/health", accept_status=frozenset({503}))


def health_status(body: bytes, status: int) -> HealthStatus:
    doc = HEALTH_BODY(body)
    return HealthStatus.model_validate({**doc, "http_status": status})
