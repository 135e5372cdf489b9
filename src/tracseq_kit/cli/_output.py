"""How ``tracseq`` prints: rich tables for people, JSON for machines, progress on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape as _e
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from tracseq_kit.client._base import Progress as ProgressCallback
from tracseq_kit.schemas import (
    EventAccepted,
    HealthStatus,
    ReplayJob,
    StoredEvent,
    SubmissionReport,
    Template,
)

__all__ = [
    "changed",
    "event_line",
    "events",
    "health",
    "job",
    "progress_bar",
    "report",
    "template",
    "templates",
]

_GOOD = {"healthy", "pass", "ok", "up", "closed"}


def _console() -> Console:
    # Piped output keeps one row per line instead of wrapping at 80 columns.
    width = None if sys.stdout.isatty() else 200
    return Console(highlight=False, width=width, soft_wrap=False)


def _emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(_plain(value), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else ""


def _status(text: str) -> str:
    colour = "green" if text in _GOOD else "yellow" if text in {"degraded", "warn"} else "red"
    return f"[{colour}]{text}[/{colour}]"


def health(report: HealthStatus, *, json_mode: bool) -> None:
    """The health report: overall status, then one row per service or check."""
    if json_mode:
        _emit_json(report)
        return
    console = _console()
    name = report.service or "stack"
    console.print(f"{_e(name)}: {_status(_e(report.status))} (HTTP {report.http_status})")
    parts = report.services or report.checks
    if not parts:
        return
    table = Table("NAME", "STATUS", "DETAIL")
    for part, value in sorted(parts.items()):
        entry = value[0] if isinstance(value, list) and value else value
        if isinstance(entry, dict):
            status = str(entry.get("status", ""))
            detail = _detail(entry)
        else:
            status, detail = str(entry), ""
        table.add_row(_e(part), _status(_e(status)), _e(detail))
    console.print(table)


def _detail(entry: dict[str, Any]) -> str:
    instances = entry.get("instances")
    if isinstance(instances, list):
        up = sum(1 for i in instances if isinstance(i, dict) and i.get("ok"))
        return f"{up}/{len(instances)} instances up"
    keys = ("output", "observedValue", "observedUnit", "latency_ms", "error")
    return " ".join(f"{k}={entry[k]}" for k in keys if entry.get(k) not in (None, ""))


def templates(items: Sequence[Template], *, json_mode: bool) -> None:
    """A table of templates."""
    if json_mode:
        _emit_json(list(items))
        return
    console = _console()
    if not items:
        console.print("no templates")
        return
    table = Table("ID", "NAME", "CATEGORY", "STATUS", "VERSION", "FIELDS", "UPDATED")
    for t in items:
        table.add_row(
            t.id,
            _e(t.name),
            t.category.value,
            t.status.value,
            str(t.version or "-"),
            str(len(t.fields)),
            _when(t.updated_at or t.created_at),
        )
    console.print(table)


def template(t: Template, *, json_mode: bool) -> None:
    """One template: its attributes, then its fields."""
    if json_mode:
        _emit_json(t)
        return
    console = _console()
    console.print(f"[bold]{_e(t.name)}[/bold]  {_e(t.id)}")
    console.print(
        f"{t.category.value}, {t.status.value}, version {t.version or '-'}"
        + (f", tags: {_e(', '.join(t.tags))}" if t.tags else "")
    )
    if t.description:
        console.print(t.description, markup=False)
    if not t.fields:
        console.print("no fields")
        return
    table = Table("FIELD", "TYPE", "REQUIRED", "UNIT", "RULES")
    for f in sorted(t.fields, key=lambda f: f.order):
        rules = f.rules.model_dump(exclude_defaults=True)
        if f.options:
            rules["options"] = f.options
        text = ", ".join(f"{k}={v}" for k, v in rules.items())
        table.add_row(
            _e(f.name), f.type.value, "yes" if f.required else "", _e(f.unit or ""), _e(text)
        )
    console.print(table)
    for rule in t.cross_field_rules:
        console.print(
            f"when {rule.when_field} is {' or '.join(rule.equals)}: "
            f"{', '.join(rule.then_required)} required",
            markup=False,
        )


def changed(result: Template | EventAccepted, message: str, *, json_mode: bool) -> None:
    """The result of a write: one line for people, the resource for machines."""
    if json_mode:
        _emit_json(result)
    else:
        _console().print(message, markup=False)


def report(r: SubmissionReport, *, json_mode: bool) -> None:
    """A validation report: the verdict, then every problem."""
    if json_mode:
        _emit_json(r)
        return
    console = _console()
    problems = [*r.header_problems, *r.problems]
    if problems:
        table = Table("ROW", "COLUMN", "RULE", "PROBLEM")
        for p in problems:
            row = "" if p.row is None else str(p.row)
            table.add_row(row, _e(p.column or ""), _e(p.rule), _e(p.message))
        console.print(table)
    if r.valid:
        console.print(f"[green]valid[/green]: {r.rows_checked} rows checked")
    else:
        console.print(
            f"[red]invalid[/red]: {len(problems)} problem(s) in {r.rows_checked} rows checked"
        )


def events(items: Sequence[StoredEvent], *, json_mode: bool) -> None:
    """A table of stored events."""
    if json_mode:
        _emit_json(list(items))
        return
    console = _console()
    if not items:
        console.print("no events")
        return
    table = Table("SEQ", "TIME", "TYPE", "SOURCE", "SUBJECT")
    for e in items:
        when = _when(e.time or e.stored_at)
        table.add_row(str(e.seq), when, _e(e.type), _e(e.source), _e(e.subject or ""))
    console.print(table)


def event_line(e: StoredEvent, *, json_mode: bool) -> None:
    """One event as it arrives: a line for people, a JSON line for machines."""
    if json_mode:
        _emit_json(e)
        return
    subject = f" {e.subject}" if e.subject else ""
    sys.stdout.write(f"{e.seq}\t{_when(e.time or e.stored_at)}\t{e.type}\t{e.source}{subject}\n")
    sys.stdout.flush()


def job(j: ReplayJob, *, json_mode: bool) -> None:
    """A replay job's state."""
    if json_mode:
        _emit_json(j)
        return
    line = f"replay {j.id} to {j.target_topic}: {j.status}, {j.done}/{j.total} events"
    if j.error:
        line += f": {j.error}"
    _console().print(line, markup=False)


@contextmanager
def progress_bar(description: str, *, unit: str) -> Iterator[ProgressCallback]:
    """A progress bar on stderr while the block runs; yields ``update(done, total)``.

    Drawn only when stderr is a terminal, so logs and pipes stay clean.
    """
    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda done, total: None
        return
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    if unit == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns += [MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total or None)

        yield update
