"""``tracseq events schemas`` and ``tracseq events check-compat``: event contracts from a
service's :class:`~tracseq_kit.events.EventRegistry`, no server needed."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

from tracseq_kit._exceptions import ConfigurationError

__all__ = ["add_schema_commands", "load_registry"]

if TYPE_CHECKING:
    from tracseq_kit.events import EventRegistry

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def add_schema_commands(
    events: Subparsers, *, parents: Sequence[argparse.ArgumentParser] = ()
) -> None:
    """Declare ``events schemas`` and ``events check-compat`` under ``events``."""
    schemas = events.add_parser(
        "schemas",
        help="export the JSON Schema of every event type and version",
        description="Export the JSON Schema of every event type and version of a registry: "
        "one file per type and version into --out, or one JSON object on stdout.",
        parents=list(parents),
    )
    _registry_option(schemas)
    schemas.add_argument("--out", metavar="DIR", help="write <type>.v<n>.schema.json files here")
    schemas.set_defaults(handler=_schemas)
    check = events.add_parser(
        "check-compat",
        help="exit 1 if the registry no longer reads events stored under BASELINE",
        description="Compare a registry with a baseline of exported schemas (a folder "
        "written by `tracseq events schemas --out`, or its stdout saved to a file) and list "
        "every change that would break readers of stored events; exit 1 if there is one.",
        parents=list(parents),
    )
    check.add_argument("baseline", metavar="BASELINE", help="schema folder or JSON file")
    _registry_option(check)
    check.set_defaults(handler=_check_compat)


def _registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        required=True,
        metavar="MODULE:ATTRIBUTE",
        help="where the EventRegistry is, e.g. myservice.events:registry "
        "(an EventRegistry or a function returning one)",
    )


def load_registry(spec: str) -> EventRegistry:
    """The :class:`EventRegistry` named by ``module:attribute`` (the current directory is
    importable). Raises :class:`~tracseq_kit.ConfigurationError` when the module or
    attribute is missing or is not a registry."""
    from tracseq_kit.events import EventRegistry  # imported when used: the CLI starts fast

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"--registry must be MODULE:ATTRIBUTE, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from None
    target = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigurationError(f"{module_name!r} has no attribute {attribute!r}") from None
    if callable(target) and not isinstance(target, type | EventRegistry):
        try:
            target = target()
        except Exception as exc:
            raise ConfigurationError(f"calling {spec!r} failed: {exc!r}") from None
    if not isinstance(target, EventRegistry):
        raise ConfigurationError(f"{spec!r} is a {type(target).__name__}, not an EventRegistry")
    return target


def _schemas(args: argparse.Namespace) -> int:
    from tracseq_kit.events import json_schemas, write_json_schemas

    registry = load_registry(args.registry)
    if args.out is None:
        json.dump(json_schemas(registry), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    for path in write_json_schemas(registry, args.out):
        print(path)
    return 0


def _check_compat(args: argparse.Namespace) -> int:
    from tracseq_kit.events import check_compatibility, load_json_schemas

    registry = load_registry(args.registry)
    problems = check_compatibility(registry, load_json_schemas(args.baseline))
    if getattr(args, "json", False):
        json.dump([asdict(p) for p in problems], sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif problems:
        print(f"{len(problems)} change(s) would break readers of stored events:")
        for problem in problems:
            print(f"  {problem}")
    else:
        print("compatible: every baseline event type and version still reads")
    return 1 if problems else 0
