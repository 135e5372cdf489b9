"""Event ingestion from Kafka into PostgreSQL, the kit's batch consumer beside a bare
loop, in one run on one broker and one database.

    python bench/ingest_bench.py --postgres-dsn DSN [--events 50000] [--rounds 3]

- bare loop: aiokafka ``getmany`` + asyncpg ``copy_records_to_table`` of each
  partition batch (attributes from the ``ce_*`` headers, the value as the JSON data),
  committing offsets after each round of batches; no CloudEvent validation, no dedupe;
- tracseq-kit: ``EventConsumer(batch_handler=...)`` with an ``Inbox``: every message
  decoded and validated as a CloudEvent, each partition batch claimed in the inbox
  with one statement (dedupe on (source, id)) and stored with one
  ``copy_records_to_table`` in the same transaction.

Both store the same events into tables of the same shape. Each round publishes N
events to a fresh topic (``publish_many``), then each target consumes it with its own
group; the time runs from its first fetched batch to its last stored row, so the
consumer-group join is not counted. Rounds alternate the order; ratios within a run are
what to read on a shared machine. Without --bootstrap an embedded broker is started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer
from pydantic import BaseModel

from tracseq_kit.events import (
    CloudEvent,
    EventBatch,
    EventConsumer,
    EventPublisher,
    Inbox,
    migrate,
    store_new_rows,
)

COLUMNS = ["source", "id", "type", "subject", "time", "data", "topic", "part", "pos"]
# The event service's kind of table: every event once, by its CloudEvents identity.
TABLE = """CREATE TABLE IF NOT EXISTS {name} (
    source text NOT NULL, id text NOT NULL, type text NOT NULL, subject text,
    time timestamptz, data jsonb, topic text NOT NULL, part int NOT NULL, pos bigint NOT NULL,
    PRIMARY KEY (source, id))"""


class SampleReceived(BaseModel):
    sample_id: str
    volume_ul: float
    site: str


def make_events(n: int) -> list[CloudEvent[SampleReceived]]:
    return [
        CloudEvent[SampleReceived](
            source="/bench/sample-service",
            type="tracseq.sample.received",
            subject=f"S-{i % 997}",
            data=SampleReceived(sample_id=f"S-{i}", volume_ul=12.5, site="main"),
        )
        for i in range(n)
    ]


@contextlib.asynccontextmanager
async def broker(bootstrap: str | None) -> AsyncIterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from tracseq_kit.local import EmbeddedKafka

    async with EmbeddedKafka() as kafka:
        yield kafka.url


async def bare_loop(bootstrap: str, pool: Any, topic: str, n: int, table: str) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bare-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    stored, first = 0, 0.0
    try:
        while stored < n:
            batches = await consumer.getmany(timeout_ms=500)
            if batches and not first:
                first = time.perf_counter()
            async with pool.acquire() as conn:
                for tp, records in batches.items():
                    rows = []
                    for r in records:
                        h = {k: v.decode() for k, v in r.headers}
                        rows.append(
                            (
                                h["ce_source"],
                                h["ce_id"],
                                h["ce_type"],
                                h.get("ce_subject"),
                                datetime.fromisoformat(h["ce_time"]),
                                r.value.decode(),
                                tp.topic,
                                tp.partition,
                                r.offset,
                            )
                        )
                    await conn.copy_records_to_table(table, records=rows, columns=COLUMNS)
                    stored += len(rows)
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
    return n / (time.perf_counter() - first)


async def kit_consumer(
    bootstrap: str, pool: Any, topic: str, n: int, table: str, *, dedupe: str
) -> float:
    """dedupe="table": store_new_rows (the table's key skips repeats); "inbox": the
    Inbox claims each batch (for consumers whose effects have no key of their own)."""
    stored = 0
    first = 0.0

    async def store(batch: EventBatch) -> None:
        nonlocal stored, first
        first = first or time.perf_counter()
        rows = [
            (
                e.source,
                e.id,
                e.type,
                e.subject,
                e.time,
                e.data_json_text(),
                d.topic,
                d.partition,
                d.offset,
            )
            for e, d in zip(batch.events, batch.deliveries, strict=True)
        ]
        if batch.conn is not None:  # the inbox's transaction
            await batch.conn.copy_records_to_table(table, records=rows, columns=COLUMNS)
        else:
            async with pool.acquire() as conn:
                await store_new_rows(conn, table, rows, columns=COLUMNS)
        stored += len(rows)

    inbox = Inbox(pool, consumer=f"bench-{uuid.uuid4().hex[:8]}") if dedupe == "inbox" else None
    consumer = EventConsumer(
        topics=[topic],
        group_id=f"kit-{uuid.uuid4().hex[:8]}",
        batch_handler=store,
        bootstrap_servers=bootstrap,
        inbox=inbox,
        retry_delays=(),
    )
    runner = asyncio.create_task(consumer.run())
    try:
        while stored < n:
            if runner.done():
                runner.result()
            await asyncio.sleep(0.005)
        done = time.perf_counter()
    finally:
        consumer.stop()
        await runner
    return n / (done - first)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument("--postgres-dsn", required=True)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:6]
    schema = f"bench_ingest_{run}"
    admin = await asyncpg.connect(args.postgres_dsn)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    targets = {
        "bare loop (getmany + COPY)": "bare",
        "kit batch consumer, table dedupe": "table",
        "kit batch consumer + Inbox": "inbox",
    }
    rates: dict[str, list[float]] = {name: [] for name in targets}
    try:
        pool = await asyncpg.create_pool(
            args.postgres_dsn, min_size=2, max_size=8, server_settings={"search_path": schema}
        )
        async with pool.acquire() as conn:
            await migrate(conn)
            for kind in targets.values():
                await conn.execute(TABLE.format(name=f"{kind}_events"))
        async with broker(args.bootstrap) as bootstrap, EventPublisher(bootstrap) as publisher:
            for round_ in range(args.rounds):
                topic = f"bench-ingest-{run}-{round_}"
                events = make_events(args.events)  # new ids: every round stores new rows
                for start in range(0, len(events), 5000):
                    await publisher.publish_many(topic, events[start : start + 5000])
                names = list(targets)
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:  # rotate who goes first
                    kind = targets[name]
                    table = f"{kind}_events"
                    if kind == "bare":
                        rate = await bare_loop(bootstrap, pool, topic, args.events, table)
                    else:
                        rate = await kit_consumer(
                            bootstrap, pool, topic, args.events, table, dedupe=kind
                        )
                    rates[name].append(rate)
                print(
                    f"round {round_ + 1}: "
                    + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()),
                    flush=True,
                )
        async with pool.acquire() as conn:
            for kind in targets.values():
                count = await conn.fetchval(f"SELECT count(*) FROM {kind}_events")
                assert count == args.events * args.rounds, (kind, count)
        await pool.close()
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()
    bare = rates["bare loop (getmany + COPY)"]
    print(f"{args.events} events per round, {args.rounds} rounds (Kafka -> PostgreSQL)")
    print(f"  {'target':34} {'best/s':>9} {'median/s':>9} {'ratio to bare, per round':>26}")
    for name, values in rates.items():
        ratios = ", ".join(f"{v / b:.2f}x" for v, b in zip(values, bare, strict=True))
        median = sorted(values)[len(values) // 2]
        print(f"  {name:34} {max(values):9,.0f} {median:9,.0f}   {ratios}")


if __name__ == "__main__":
    asyncio.run(main())
