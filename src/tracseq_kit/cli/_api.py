"""The API commands of ``tracseq``: health, templates and events, over the typed client."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.cli import _output as out
from tracseq_kit.cli._schemas import add_schema_commands
from tracseq_kit.client import TracSeqClient

__all__ = ["add_api_commands", "client_options"]

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def client_options() -> argparse.ArgumentParser:
    """Options every API command takes, before or after the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection and output")
    group.add_argument(
        "--base-url",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="the gateway or service ($TRACSEQ_BASE_URL, else http://127.0.0.1:8000)",
    )
    group.add_argument(
        "--token", default=argparse.SUPPRESS, help="bearer token ($TRACSEQ_API_TOKEN)"
    )
    group.add_argument(
        "--timeout",
        type=_positive,
        default=argparse.SUPPRESS,
        metavar="SECONDS",
        help="per-attempt timeout (30)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print JSON on stdout (JSON lines for tail)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print a traceback with errors",
    )
    return common


def add_api_commands(subparsers: Subparsers) -> None:
    """Declare ``health``, ``templates ...`` and ``events ...``."""
    common = client_options()

    def command(parent: Subparsers, name: str, help: str, handler: Any) -> argparse.ArgumentParser:
        parser = parent.add_parser(name, help=help, description=help, parents=[common])
        parser.set_defaults(handler=handler)
        return parser

    command(subparsers, "health", "the stack's health; exits 1 unless healthy", _health)

    templates = subparsers.add_parser(
        "templates", help="sample-sheet templates", description="Sample-sheet templates."
    ).add_subparsers(title="commands", metavar="COMMAND", required=True)
    listing = command(templates, "list", "templates, newest first", _templates_list)
    listing.add_argument("--status", help="draft, published, archived or deprecated")
    listing.add_argument("--category", help="e.g. submission, sequencing, storage")
    listing.add_argument("--tag", help="only templates with this tag")
    listing.add_argument("-q", "--search", help="text in the name or description")
    _limit(listing, 50)
    show = command(templates, "show", "one template and its fields", _templates_show)
    show.add_argument("id")
    show.add_argument("--version", type=_positive_int, help="a published version")
    create = command(templates, "create", "create a draft from a JSON file", _templates_create)
    create.add_argument("file", help="a JSON TemplateCreate document ('-' for stdin)")
    publish = command(templates, "publish", "publish the next version", _templates_publish)
    publish.add_argument("id")
    validate = command(
        templates, "validate", "validate a CSV/XLSX sheet; exits 1 if invalid", _validate
    )
    validate.add_argument("id", help="the template")
    validate.add_argument("file", help="the sample sheet (.csv or .xlsx)")
    validate.add_argument("--version", type=_positive_int, help="default: latest published")
    validate.add_argument("--rows", action="store_true", help="include the parsed rows (--json)")

    events = subparsers.add_parser(
        "events", help="the event store", description="The event store."
    ).add_subparsers(title="commands", metavar="COMMAND", required=True)
    query = command(events, "query", "stored events, newest first", _events_query)
    _event_filters(query, times=True)
    _limit(query, 50)
    tail = command(events, "tail", "follow events as they are stored (Ctrl-C stops)", _tail)
    _event_filters(tail, times=False)
    tail.add_argument("--after", metavar="SEQ", help="start after this event sequence number")
    tail.add_argument("--count", type=_positive_int, help="stop after N events")
    publish_event = command(events, "publish", "publish one CloudEvent", _events_publish)
    publish_event.add_argument("--type", required=True, help="e.g. tracseq.sample.received")
    publish_event.add_argument("--source", required=True, help="e.g. /lab/robot-3")
    publish_event.add_argument("--subject")
    data = publish_event.add_mutually_exclusive_group()
    data.add_argument("--data", help="the event data as JSON")
    data.add_argument("--data-file", help="a file holding the data as JSON ('-' for stdin)")
    replay = command(
        events, "replay", "re-publish stored events to a topic, with progress", _replay
    )
    replay.add_argument("topic", help="the Kafka topic to publish to")
    _event_filters(replay, times=True)
    replay.add_argument("--no-wait", action="store_true", help="start the job and return")
    add_schema_commands(events, parents=[common])


def _limit(parser: argparse.ArgumentParser, default: int) -> None:
    parser.add_argument(
        "--limit",
        type=_non_negative_int,
        default=default,
        metavar="N",
        help=f"at most N items, 0 for all ({default})",
    )


def _event_filters(parser: argparse.ArgumentParser, *, times: bool) -> None:
    parser.add_argument("--type", help="event type; a trailing * matches a prefix")
    parser.add_argument("--source")
    parser.add_argument("--subject")
    if times:
        parser.add_argument("--since", type=_timestamp, help="ISO 8601, e.g. 2026-05-01T08:00")
        parser.add_argument("--until", type=_timestamp, help="ISO 8601")


# -- argument types: bad values are usage errors (exit 2) --------------------------------


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a whole number >= 0: {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _timestamp(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None


# -- helpers -----------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> TracSeqClient:
    return TracSeqClient(
        getattr(args, "base_url", None),
        token=getattr(args, "token", None),
        timeout=getattr(args, "timeout", 30.0),
    )


def _json_mode(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _read_json(name: str, what: str) -> Any:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read {name!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{name!r} is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"{what} in {name!r} is not valid JSON: {exc}") from None


def _limited(items: Iterator[Any], limit: int) -> list[Any]:
    return list(items if limit == 0 else islice(items, limit))


# -- commands ----------------------------------------------------------------------------


def _health(args: argparse.Namespace) -> int:
    with _client(args) as client:
        report = client.health()
    out.health(report, json_mode=_json_mode(args))
    return 0 if report.ok else 1


def _templates_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        pager = client.templates.list(
            status=args.status,
            category=args.category,
            tag=args.tag,
            q=args.search,
            page_size=min(200, args.limit or 200),
        )
        items = _limited(iter(pager), args.limit)
    out.templates(items, json_mode=_json_mode(args))
    return 0


def _templates_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        template = client.templates.get(args.id, version=args.version)
    out.template(template, json_mode=_json_mode(args))
    return 0


def _templates_create(args: argparse.Namespace) -> int:
    document = _read_json(args.file, "the template")
    if not isinstance(document, dict):
        raise ConfigurationError(f"the template in {args.file!r} must be a JSON object")
    with _client(args) as client:
        template = client.templates.create(document)
    out.changed(template, f"created draft {template.id}", json_mode=_json_mode(args))
    return 0


def _templates_publish(args: argparse.Namespace) -> int:
    with _client(args) as client:
        template = client.templates.publish(args.id)
    message = f"published {template.name!r} as version {template.version}"
    out.changed(template, message, json_mode=_json_mode(args))
    return 0


def _validate(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise ConfigurationError(f"no such sheet: {args.file!r}")
    with _client(args) as client, out.progress_bar(f"uploading {path.name}", unit="bytes") as bar:
        report = client.templates.validate_submission(
            args.id, path, version=args.version, include_rows=args.rows, progress=bar
        )
    out.report(report, json_mode=_json_mode(args))
    return 0 if report.valid else 1


def _events_query(args: argparse.Namespace) -> int:
    with _client(args) as client:
        pager = client.events.query(
            type=args.type,
            source=args.source,
            subject=args.subject,
            since=args.since,
            until=args.until,
            page_size=min(500, args.limit or 500),
        )
        items = _limited(iter(pager), args.limit)
    out.events(items, json_mode=_json_mode(args))
    return 0


def _tail(args: argparse.Namespace) -> int:
    json_mode = _json_mode(args)
    with _client(args) as client:  # a quiet stream times out and resumes where it was
        stream = client.events.tail(
            type=args.type, source=args.source, subject=args.subject, last_event_id=args.after
        )
        for event in stream if args.count is None else islice(stream, args.count):
            out.event_line(event, json_mode=json_mode)
    return 0


def _events_publish(args: argparse.Namespace) -> int:
    if args.data_file is not None:
        data = _read_json(args.data_file, "the event data")
    elif args.data is not None:
        try:
            data = json.loads(args.data)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"--data is not valid JSON: {exc}") from None
    else:
        data = None
    with _client(args) as client:
        accepted = client.events.publish(
            type=args.type, source=args.source, subject=args.subject, data=data
        )
    out.changed(accepted, f"accepted event {accepted.id}", json_mode=_json_mode(args))
    return 0


def _replay(args: argparse.Namespace) -> int:
    label = f"replaying to {args.topic}"
    with _client(args) as client, out.progress_bar(label, unit="events") as bar:
        job = client.events.replay(
            args.topic,
            type=args.type,
            source=args.source,
            subject=args.subject,
            since=args.since,
            until=args.until,
            wait=not args.no_wait,
            progress=bar,
        )
    out.job(job, json_mode=_json_mode(args))
    return 1 if job.status == "failed" else 0
