"""Appending to aggregate streams vs bare asyncpg INSERTs of the same rows, in one run.

    python bench/eventsourcing_bench.py --postgres-dsn postgresql://postgres@127.0.0.1:5432/test
        [--events 10000] [--singles 500] [--writers 8] [--rounds 3]

A fresh schema is created (and dropped afterwards) holding the kit's tables and
``bare_events``, a copy of ``tracseq_es_events`` (same columns, indexes and unique
constraints; the position an identity column). Every target starts from the same
pydantic payloads and serialises them inside the timing. Scenarios:

- batch: ``--events`` new aggregates with one event each in one transaction (a sheet
  registered at once). Kit: ``Repository.save_all`` — one append statement with the
  version checks, plus the outbox rows for Kafka (and, as a split, the same without
  the outbox). Bare: ``executemany`` of an ``INSERT`` per row, and ``COPY``; and, as
  what a service would hand-write to get the same guarantees minus the version checks,
  ``COPY`` plus ``Outbox.add_many`` in one transaction.
- single: ``--singles`` commands one after the other on one connection, each appending
  one event to an existing stream in its own transaction. Kit: ``store.append`` with
  the expected version (the lock, the check, the event and its outbox row, commit).
  Bare: one ``INSERT`` (autocommit); hand-written: ``INSERT`` plus ``Outbox.add`` in a
  transaction.
- concurrent: the single appends from ``--writers`` connections at once.

Rounds interleave; the best of each target is kept. Ratios are events/s of the kit
over events/s of the bare target (goal: at least 0.5x).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from tracseq_kit.events import CloudEvent, Outbox
from tracseq_kit.eventsourcing import (
    Aggregate,
    PostgresEventStore,
    Repository,
    applies,
    migrate,
)

COLUMNS = [
    "stream_id",
    "stream_type",
    "version",
    "event_id",
    "type",
    "source",
    "subject",
    "time",
    "dataschema",
    "extensions",
    "data",
]
INSERT = """INSERT INTO bare_events (stream_id, stream_type, version, event_id, type, source,
    subject, time, dataschema, extensions, data)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb)"""


class SampleReceived(BaseModel):
    barcode: str
    project: str
    volume_ul: float


class QcPassed(BaseModel):
    by: str


class SampleState(BaseModel):
    status: str = "new"
    barcode: str = ""


class Sample(Aggregate[SampleState]):
    stream_type = "sample"

    @classmethod
    def receive(cls, sample_id: str, data: SampleReceived) -> Sample:
        sample = cls(sample_id)
        sample.record(data)
        return sample

    @applies("tracseq.sample.received", SampleReceived)
    def _received(self, data: SampleReceived) -> None:
        self.state.status = "received"
        self.state.barcode = data.barcode

    @applies("tracseq.sample.qc_passed", QcPassed)
    def _qc_passed(self, data: QcPassed) -> None:
        self.state.status = "qc_passed"


def payloads(n: int) -> list[SampleReceived]:
    return [SampleReceived(barcode=f"BC{i:06d}", project="P-1", volume_ul=12.5) for i in range(n)]


def bare_rows(ids: list[str], data: list[BaseModel], versions: list[int]) -> list[tuple[Any, ...]]:
    """The rows the kit writes for these events, built as any INSERT of them must."""
    now = datetime.now(UTC)
    return [
        (
            i,
            "sample",
            v,
            str(uuid.uuid4()),
            "tracseq.sample.received",
            "/bench",
            i,
            now,
            None,
            None,
            d.model_dump_json(),
        )
        for i, d, v in zip(ids, data, versions, strict=True)
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres-dsn", required=True)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--singles", type=int, default=500)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    schema = f"es_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.postgres_dsn)
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        await run(args, schema)
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


async def run(args: argparse.Namespace, schema: str) -> None:
    n, singles = args.events, args.singles
    pool = await asyncpg.create_pool(
        args.postgres_dsn,
        min_size=args.writers,
        max_size=args.writers,
        server_settings={"search_path": schema},
    )
    async with pool.acquire() as conn:
        await migrate(conn)
        await conn.execute(
            "CREATE TABLE bare_events (LIKE tracseq_es_events INCLUDING ALL);"
            "ALTER TABLE bare_events ALTER position ADD GENERATED ALWAYS AS IDENTITY"
        )
    store = PostgresEventStore(pool, topic="tracseq.samples")
    no_outbox = PostgresEventStore(pool, topic=None)
    samples = Repository(Sample, store, source="/bench")
    samples_no_outbox = Repository(Sample, no_outbox, source="/bench")
    data = payloads(n)
    qc = [QcPassed(by="ann") for _ in range(singles)]
    rnd = 0

    # -- batch ---------------------------------------------------------------------
    def fresh_ids(prefix: str) -> list[str]:
        return [f"{prefix}-{rnd}-{i}" for i in range(n)]

    async def kit_batch(repository: Repository[Sample], prefix: str) -> None:
        aggregates = [Sample.receive(i, d) for i, d in zip(fresh_ids(prefix), data, strict=True)]
        start = time.perf_counter()
        await repository.save_all(aggregates)
        timings[prefix] = time.perf_counter() - start

    async def bare_executemany() -> None:
        ids = fresh_ids("em")
        start = time.perf_counter()
        rows = bare_rows(ids, list(data), [1] * n)
        async with pool.acquire() as conn, conn.transaction():
            await conn.executemany(INSERT, rows)
        timings["em"] = time.perf_counter() - start

    async def bare_copy(*, outbox: bool) -> None:
        name = "cp+ob" if outbox else "cp"
        ids = fresh_ids(name)
        start = time.perf_counter()
        rows = bare_rows(ids, list(data), [1] * n)
        async with pool.acquire() as conn, conn.transaction():
            await conn.copy_records_to_table("bare_events", records=rows, columns=COLUMNS)
            if outbox:
                events = [
                    CloudEvent[SampleReceived](
                        id=r[3], source="/bench", type=r[4], subject=r[0], time=r[7], data=d
                    )
                    for r, d in zip(rows, data, strict=True)
                ]
                await Outbox().add_many(conn, "tracseq.samples", events)
        timings[name] = time.perf_counter() - start

    # -- single appends on existing streams -----------------------------------------
    single_ids = [f"single-{i}" for i in range(max(singles, args.writers))]
    await samples_no_outbox.save_all(
        [Sample.receive(i, d) for i, d in zip(single_ids, data, strict=False)]
    )
    kit_versions = dict.fromkeys(single_ids, 1)
    bare_versions = dict.fromkeys(single_ids, 0)
    outbox_versions = dict.fromkeys(single_ids, 10_000_000)  # its own range of versions

    def qc_event(stream_id: str, version: int, payload: QcPassed) -> CloudEvent[QcPassed]:
        return CloudEvent[QcPassed](
            source="/bench",
            type="tracseq.sample.qc_passed",
            subject=stream_id,
            data=payload,
            extensions={"streamversion": version},
        )

    async def kit_single(ids: list[str]) -> None:
        async with pool.acquire() as conn:
            for stream_id, payload in zip(ids, qc, strict=False):
                v = kit_versions[stream_id]
                event = qc_event(stream_id, v + 1, payload)
                await store.append(
                    stream_id, [event], stream_type="sample", expected_version=v, conn=conn
                )
                kit_versions[stream_id] = v + 1

    async def bare_single(ids: list[str], *, outbox: bool = False) -> None:
        versions = outbox_versions if outbox else bare_versions
        async with pool.acquire() as conn:
            for stream_id, payload in zip(ids, qc, strict=False):
                v = versions[stream_id]
                row = bare_rows([stream_id], [payload], [v + 1])[0]
                if outbox:
                    async with conn.transaction():
                        await conn.execute(INSERT, *row)
                        await Outbox().add(
                            conn, "tracseq.samples", qc_event(stream_id, v + 1, payload)
                        )
                else:
                    await conn.execute(INSERT, *row)
                versions[stream_id] = v + 1

    async def bare_single_outbox(ids: list[str]) -> None:
        await bare_single(ids, outbox=True)

    async def concurrently(fn: Callable[[list[str]], Awaitable[None]]) -> None:
        per = singles // args.writers
        groups = [single_ids[w :: args.writers][:per] for w in range(args.writers)]
        await asyncio.gather(*(fn(g) for g in groups))

    async def timed(name: str, fn: Callable[[], Awaitable[None]]) -> None:
        start = time.perf_counter()
        await fn()
        timings[name] = time.perf_counter() - start

    best: dict[str, float] = {}
    counts = {
        "kit": n,
        "kit0": n,
        "em": n,
        "cp": n,
        "cp+ob": n,
        "kit single": singles,
        "bare single": singles,
        "bare+ob single": singles,
        "kit concurrent": singles // args.writers * args.writers,
        "bare concurrent": singles // args.writers * args.writers,
        "bare+ob concurrent": singles // args.writers * args.writers,
    }
    for rnd in range(args.rounds):  # noqa: B007 (fresh_ids reads it)
        timings: dict[str, float] = {}
        await kit_batch(samples, "kit")
        await kit_batch(samples_no_outbox, "kit0")
        await bare_executemany()
        await bare_copy(outbox=False)
        await bare_copy(outbox=True)
        await timed("kit single", lambda: kit_single(single_ids[:singles]))
        await timed("bare single", lambda: bare_single(single_ids[:singles]))
        await timed("bare+ob single", lambda: bare_single_outbox(single_ids[:singles]))
        await timed("kit concurrent", lambda: concurrently(kit_single))
        await timed("bare concurrent", lambda: concurrently(bare_single))
        await timed("bare+ob concurrent", lambda: concurrently(bare_single_outbox))
        for name, seconds in timings.items():
            best[name] = max(best.get(name, 0.0), counts[name] / seconds)
    await pool.close()

    def line(label: str, name: str, versus: str | None = None, *, extra: str = "") -> None:
        ratio = f"{best[name] / best[versus]:8.2f}x" if versus else f"{'':9}"
        print(f"  {label:52} {best[name]:10,.0f} {ratio} {extra}")

    print(f"batch: {n:,} new streams, one event each, one transaction (best of {args.rounds})")
    print(f"  {'target':52} {'events/s':>10} {'ratio':>9}")
    line("bare executemany INSERT", "em")
    line("bare COPY", "cp")
    line("hand-written: COPY + Outbox.add_many", "cp+ob")
    line("kit save_all (append + outbox)", "kit", "em", extra="vs executemany")
    line("", "kit", "cp", extra="vs COPY")
    line("", "kit", "cp+ob", extra="vs COPY + outbox")
    line("kit save_all, topic=None (no outbox rows)", "kit0", "em", extra="vs executemany")
    line("", "kit0", "cp", extra="vs COPY")
    print(f"  {n:,}-event batch append: {n / best['kit'] * 1000:.0f} ms with the outbox")
    print(f"single: {singles} appends of one event to existing streams, one transaction each")
    line("bare INSERT (autocommit)", "bare single")
    line("hand-written: INSERT + Outbox.add, a transaction", "bare+ob single")
    line("kit store.append (expected version, outbox)", "kit single", "bare single")
    line("", "kit single", "bare+ob single", extra="vs INSERT + outbox")
    line(f"bare INSERT, {args.writers} connections", "bare concurrent")
    line(f"hand-written INSERT + outbox, {args.writers} connections", "bare+ob concurrent")
    line(f"kit store.append, {args.writers} connections", "kit concurrent", "bare concurrent")
    line("", "kit concurrent", "bare+ob concurrent", extra="vs INSERT + outbox")


if __name__ == "__main__":
    asyncio.run(main())
