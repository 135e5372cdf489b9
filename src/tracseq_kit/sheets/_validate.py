"""Validating a sheet against a template: every cell, every rule, every problem."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlparse

from tracseq_kit.schemas import (
    CrossFieldRule,
    FieldDefinition,
    FieldType,
    SheetProblem,
    SubmissionReport,
)
from tracseq_kit.sheets._read import Sheet

__all__ = ["validate_sheet"]

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_TRUE = frozenset({"true", "yes", "y", "1"})
_FALSE = frozenset({"false", "no", "n", "0"})
_MAX_PROBLEMS = 1000


class _Invalid(Exception):
    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        self.message = message


Converter = Callable[[Any], Any]


def _text(v: Any) -> str:
    return v if isinstance(v, str) else str(v)


def _converter(f: FieldDefinition) -> Converter:
    """A function from a non-empty cell to its typed value, raising _Invalid."""
    t = f.type
    if t in (FieldType.TEXT,):
        return _text
    if t == FieldType.INTEGER:

        def integer(v: Any) -> int:
            if isinstance(v, bool):
                raise _Invalid("type", "expected a whole number")
            if isinstance(v, int):
                return v
            if isinstance(v, float) and v.is_integer():
                return int(v)
            try:
                return int(_text(v).strip())
            except ValueError:
                raise _Invalid("type", f"expected a whole number, got {v!r}") from None

        return integer
    if t == FieldType.DECIMAL:

        def decimal(v: Any) -> Decimal:
            if isinstance(v, int | float) and not isinstance(v, bool):
                return Decimal(str(v))
            try:
                d = Decimal(_text(v).strip())
            except InvalidOperation:
                raise _Invalid("type", f"expected a number, got {v!r}") from None
            if not d.is_finite():
                raise _Invalid("type", f"expected a finite number, got {v!r}")
            return d

        return decimal
    if t == FieldType.BOOLEAN:

        def boolean(v: Any) -> bool:
            if isinstance(v, bool):
                return v
            s = _text(v).strip().lower()
            if s in _TRUE:
                return True
            if s in _FALSE:
                return False
            raise _Invalid("type", f"expected yes/no or true/false, got {v!r}")

        return boolean
    if t == FieldType.DATE:

        def a_date(v: Any) -> date:
            if isinstance(v, datetime):
                return v.date()
            if isinstance(v, date):
                return v
            try:
                return date.fromisoformat(_text(v).strip())
            except ValueError:
                raise _Invalid("type", f"expected a date like 2024-05-31, got {v!r}") from None

        return a_date
    if t == FieldType.DATETIME:

        def a_datetime(v: Any) -> datetime:
            if isinstance(v, datetime):
                return v
            try:
                return datetime.fromisoformat(_text(v).strip())
            except ValueError:
                raise _Invalid(
                    "type", f"expected a date and time like 2024-05-31T14:00, got {v!r}"
                ) from None

        return a_datetime
    if t == FieldType.ENUM:
        options = frozenset(f.options or ())

        def enum(v: Any) -> str:
            s = _text(v).strip()
            if s not in options:
                raise _Invalid("options", f"{s!r} is not one of {sorted(options)}")
            return s

        return enum
    if t == FieldType.MULTI_ENUM:
        options = frozenset(f.options or ())

        def multi(v: Any) -> list[str]:
            parts = [p.strip() for p in re.split(r"[;,]", _text(v)) if p.strip()]
            bad = [p for p in parts if p not in options]
            if bad:
                raise _Invalid("options", f"{bad} not among {sorted(options)}")
            return parts

        return multi
    if t == FieldType.EMAIL:

        def email(v: Any) -> str:
            s = _text(v).strip()
            if not _EMAIL.fullmatch(s):
                raise _Invalid("type", f"{s!r} is not an email address")
            return s

        return email
    if t == FieldType.URL:

        def url(v: Any) -> str:
            s = _text(v).strip()
            u = urlparse(s)
            if u.scheme not in ("http", "https") or not u.netloc:
                raise _Invalid("type", f"{s!r} is not an http(s) URL")
            return s

        return url
    assert t == FieldType.BARCODE
    barcode = re.compile(f.barcode_pattern or ".*")

    def a_barcode(v: Any) -> str:
        s = _text(v).strip()
        if not barcode.fullmatch(s):
            raise _Invalid("barcode_pattern", f"{s!r} does not match {barcode.pattern!r}")
        return s

    return a_barcode


def _checks(f: FieldDefinition) -> list[Callable[[Any], None]]:
    """The rule checks for a typed value."""
    r = f.rules
    out: list[Callable[[Any], None]] = []
    if r.min_length is not None or r.max_length is not None:
        lo, hi = r.min_length, r.max_length

        def length(v: Any) -> None:
            n = len(v) if isinstance(v, str | list) else len(str(v))
            if lo is not None and n < lo:
                raise _Invalid("min_length", f"shorter than {lo} characters")
            if hi is not None and n > hi:
                raise _Invalid("max_length", f"longer than {hi} characters")

        out.append(length)
    if r.pattern is not None:
        pattern = re.compile(r.pattern)

        def matches(v: Any) -> None:
            if not pattern.fullmatch(str(v)):
                raise _Invalid("pattern", f"{v!s} does not match {pattern.pattern!r}")

        out.append(matches)
    if r.min_value is not None or r.max_value is not None:
        lo_v, hi_v = r.min_value, r.max_value

        def bounds(v: Any) -> None:
            if not isinstance(v, int | Decimal) or isinstance(v, bool):
                return
            if lo_v is not None and v < lo_v:
                raise _Invalid("min_value", f"{v} is below the minimum {lo_v}")
            if hi_v is not None and v > hi_v:
                raise _Invalid("max_value", f"{v} is above the maximum {hi_v}")

        out.append(bounds)
    if r.allowed_values is not None:
        allowed = frozenset(r.allowed_values)

        def in_allowed(v: Any) -> None:
            if str(v) not in allowed:
                raise _Invalid("allowed_values", f"{v!s} is not allowed")

        out.append(in_allowed)
    return out


def _header_index(
    header: Sequence[str], fields: Sequence[FieldDefinition], problems: list[SheetProblem]
) -> dict[str, int]:
    by_key: dict[str, FieldDefinition] = {}
    for field in fields:
        by_key[field.name.lower()] = field
        by_key[field.label.strip().lower()] = field
    index: dict[str, int] = {}
    seen: dict[str, int] = {}
    for j, raw in enumerate(header):
        key = raw.strip().lower()
        if not key:
            problems.append(
                SheetProblem(
                    row=None,
                    column=f"column {j + 1}",
                    rule="header",
                    message="a column has no header",
                )
            )
            continue
        f = by_key.get(key)
        if f is None:
            problems.append(
                SheetProblem(
                    row=None,
                    column=raw,
                    rule="unknown_column",
                    message=f"{raw!r} is not a field of this template",
                )
            )
            continue
        if f.name in seen:
            problems.append(
                SheetProblem(
                    row=None,
                    column=raw,
                    rule="duplicated_column",
                    message=f"{f.name!r} appears more than once",
                )
            )
            continue
        seen[f.name] = j
        index[f.name] = j
    for f in fields:
        if f.required and f.name not in index and f.default is None:
            problems.append(
                SheetProblem(
                    row=None,
                    column=f.label,
                    rule="missing_column",
                    message=f"required column {f.label!r} is missing",
                )
            )
    return index


def validate_sheet(
    fields: Sequence[FieldDefinition],
    sheet: Sheet,
    *,
    cross_field_rules: Sequence[CrossFieldRule] = (),
    include_rows: bool = True,
) -> SubmissionReport:
    """Check every cell of ``sheet`` against ``fields`` and ``cross_field_rules``.

    Returns a report with every problem (up to 1000) by row, column and rule — header
    problems (missing, unknown, duplicated columns) separately — and, when the sheet is
    valid and ``include_rows``, the rows as typed values keyed by field name (empty
    optional cells take the field's default). Never raises for bad cell content.
    """
    header_problems: list[SheetProblem] = []
    index = _header_index(sheet.header, fields, header_problems)
    problems: list[SheetProblem] = [
        SheetProblem(
            row=r,
            column=sheet.header[c] if c < len(sheet.header) else None,
            rule="formula",
            message="formula cells are not accepted; paste values",
        )
        for r, c in sheet.formulas
    ]
    plans = []
    for f in sorted(fields, key=lambda f: f.order):
        col = index.get(f.name)
        label = sheet.header[col] if col is not None else f.label
        plans.append((f, col, label, _converter(f), _checks(f)))
    formulas = set(sheet.formulas)
    unique_seen: dict[str, dict[Any, int]] = {f.name: {} for f in fields if f.rules.unique}
    typed_rows: list[dict[str, Any]] = []
    for i, row in enumerate(sheet.rows, start=1):
        typed: dict[str, Any] = {}
        invalid: set[str] = set()  # already reported in this row: no second problem
        for f, col, label, convert, checks in plans:
            cell = row[col] if col is not None and col < len(row) else None
            if (i, col) in formulas:
                invalid.add(f.name)  # reported as a formula cell already
                typed[f.name] = None
                continue
            if cell is None or (isinstance(cell, str) and not cell.strip()):
                if f.required and f.default is None and col is not None:
                    invalid.add(f.name)
                    problems.append(
                        SheetProblem(
                            row=i, column=label, rule="required", message="a value is required"
                        )
                    )
                typed[f.name] = f.default
                continue
            try:
                value = convert(cell)
                for check in checks:
                    check(value)
            except _Invalid as bad:
                invalid.add(f.name)
                problems.append(
                    SheetProblem(row=i, column=label, rule=bad.rule, message=bad.message)
                )
                typed[f.name] = None
                continue
            seen = unique_seen.get(f.name)
            if seen is not None:
                key = tuple(value) if isinstance(value, list) else value
                first = seen.setdefault(key, i)
                if first != i:
                    problems.append(
                        SheetProblem(
                            row=i, column=label, rule="unique", message=f"same value as row {first}"
                        )
                    )
            typed[f.name] = value
        for rule in cross_field_rules:
            trigger = typed.get(rule.when_field)
            if trigger is not None and str(trigger) in rule.equals:
                for name in rule.then_required:
                    if name not in invalid and typed.get(name) in (None, "", []):
                        problems.append(
                            SheetProblem(
                                row=i,
                                column=name,
                                rule="cross_field",
                                message=f"required when {rule.when_field} is {trigger}",
                            )
                        )
        typed_rows.append(typed)
        if len(problems) >= _MAX_PROBLEMS:
            problems = problems[:_MAX_PROBLEMS]
            break
    valid = not header_problems and not problems
    return SubmissionReport(
        valid=valid,
        rows_checked=len(typed_rows),
        header_problems=header_problems,
        problems=problems,
        rows=typed_rows if valid and include_rows else None,
    )
