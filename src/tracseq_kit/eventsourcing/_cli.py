"""``python -m tracseq_kit.eventsourcing``: migrate, status and rebuild for operators."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
from typing import Any

from tracseq_kit._exceptions import ConfigurationError, TracSeqError
from tracseq_kit.eventsourcing._postgres import PostgresEventStore, migrate
from tracseq_kit.eventsourcing._projection import Projection, rebuild

__all__ = ["load_projection", "main"]

DSN_ENV = "TRACSEQ_DATABASE_URL"


def load_projection(target: str) -> Projection:
    """The projection named by ``"package.module:attribute"``: an instance, or a
    :class:`Projection` subclass created without arguments.

    Raises :class:`~tracseq_kit.ConfigurationError` if it cannot be imported or is not
    a projection.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"{target!r} is not 'package.module:attribute'")
    try:
        found: Any = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"cannot import {target!r}: {exc}") from exc
    if isinstance(found, type) and issubclass(found, Projection):
        found = found()
    if not isinstance(found, Projection):
        raise ConfigurationError(f"{target!r} is not a Projection (it is {type(found).__name__})")
    return found


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status (2: bad arguments or configuration).

    - ``migrate``: create or upgrade the event store's tables (and the outbox's);
    - ``status``: the head position and each projection's checkpoint and lag;
    - ``rebuild module:projection ...``: empty each projection's read model and replay
      the whole store into it (:func:`rebuild`).

    The database comes from ``--dsn`` or ``TRACSEQ_DATABASE_URL``; a ``search_path``
    query parameter selects the schema.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tracseq_kit.eventsourcing",
        description="Operate a PostgreSQL event store: migrate, status, rebuild projections.",
    )
    parser.add_argument("--dsn", default=os.environ.get(DSN_ENV), help=f"default: ${DSN_ENV}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="create or upgrade the tables")
    commands.add_parser("status", help="head position, checkpoints and lag")
    rebuilding = commands.add_parser("rebuild", help="empty projections and replay the store")
    rebuilding.add_argument("projections", nargs="+", metavar="module:projection")
    rebuilding.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args(argv)
    try:
        if not args.dsn:
            raise ConfigurationError(f"no database: pass --dsn or set {DSN_ENV}")
        projections = (
            [load_projection(t) for t in args.projections] if args.command == "rebuild" else []
        )
        return asyncio.run(_run(args, projections))
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (TracSeqError, OSError) as exc:  # OSError: the server cannot be reached
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace, projections: list[Projection]) -> int:
    import asyncpg

    pool = await asyncpg.create_pool(args.dsn, min_size=1, max_size=2)
    try:
        if args.command == "migrate":
            async with pool.acquire() as conn:
                applied = await migrate(conn)
            print(f"applied: {', '.join(applied)}" if applied else "up to date")
            return 0
        store = PostgresEventStore(pool, topic=None)
        if args.command == "status":
            head = await store.head_position()
            print(f"head position: {head}")
            for name, position in sorted((await store.checkpoints()).items()):
                print(f"{name}: at {position}, {head - position} behind")
            return 0
        for projection in projections:
            count = await rebuild(store, projection, batch_size=args.batch_size)
            print(f"rebuilt {projection.name}: {count} events applied")
        return 0
    finally:
        await pool.close()
