"""The base of every response model: tolerant parsing and a notebook-friendly HTML view."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

__all__ = ["IsoDateTime", "ResponseModel", "to_html"]


def _iso_only(value: Any) -> Any:
    # pydantic's lax mode would read 0.5 or "0.5" as a Unix time; the schema says
    # date-time, so only an RFC 3339 string (or a datetime) is one
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or "-" not in value[:8]:
        raise ValueError("must be an RFC 3339 date-time, e.g. 2026-12-04T10:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]
"""A date-time given as an RFC 3339 string (numbers are not read as Unix times)."""

_MAX_ROWS = 50


class ResponseModel(BaseModel):
    """A response body: ignores fields a newer server adds; renders as a table in Jupyter."""

    model_config = ConfigDict(extra="ignore")

    def _repr_html_(self) -> str:
        return to_html(self)


def to_html(value: Any) -> str:
    """An HTML table of a model, a list of models or plain data (escaped, bounded)."""
    if isinstance(value, BaseModel):
        title = f"<b>{html.escape(type(value).__name__)}</b>"
        return title + _table({k: getattr(value, k) for k in type(value).model_fields})
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return _rows(list(value))
    if isinstance(value, Mapping):
        return _table(value)
    return html.escape(str(value))


def _cell(value: Any) -> str:
    if isinstance(value, BaseModel | Mapping):
        return to_html(value) if value else ""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        if value and all(isinstance(v, BaseModel) for v in value):
            return _rows(list(value))
        return html.escape(", ".join(str(v) for v in value))
    if value is None:
        return ""
    text = str(getattr(value, "value", value))
    return html.escape(text if len(text) <= 200 else text[:199] + "…")


def _table(items: Mapping[str, Any]) -> str:
    body = "".join(
        f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td>{_cell(v)}</td></tr>"
        for k, v in items.items()
    )
    return f"<table>{body}</table>"


def _rows(items: list[Any]) -> str:
    """Many models as one table: a column per field."""
    if not items:
        return "<i>(none)</i>"
    if not all(isinstance(i, BaseModel) for i in items):
        return "<ul>" + "".join(f"<li>{_cell(i)}</li>" for i in items[:_MAX_ROWS]) + "</ul>"
    columns = list(type(items[0]).model_fields)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(getattr(i, c, None))}</td>" for c in columns) + "</tr>"
        for i in items[:_MAX_ROWS]
    )
    more = len(items) - _MAX_ROWS
    tail = f"<p>… and {more} more</p>" if more > 0 else ""
    return f"<table><tr>{head}</tr>{body}</table>{tail}"
