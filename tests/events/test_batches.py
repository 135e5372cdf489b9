"""Batch handlers: one statement per partition batch with inbox dedupe kept, on the
InMemoryBroker and on the Kafka-protocol broker, with real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from events_support import Backend, event, migrated_pool, run_until

from tracseq_kit import ConfigurationError
from tracseq_kit.events import EventBatch, EventConsumer, Inbox, InMemoryBroker, store_new_rows
from tracseq_kit.testing import PostgresSchema

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pool(postgres_schema: PostgresSchema) -> AsyncIterator[Any]:
    async with migrated_pool(postgres_schema.dsn) as p:
        await p.execute(
            "CREATE TABLE IF NOT EXISTS stored (source text, id text, subject text, n int,"
            " PRIMARY KEY (source, id))"
        )
        await p.execute("TRUNCATE stored")
        yield p


async def store(batch: EventBatch) -> None:
    """The event service's way: one INSERT for the batch, on the inbox transaction."""
    await batch.conn.execute(
        "INSERT INTO stored SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[])",
        [e.source for e in batch.events],
        [e.id for e in batch.events],
        [e.subject for e in batch.events],
        [e.data["n"] for e in batch.events],
    )


async def test_batches_store_every_event_once_in_order_per_key(
    backend: Backend, kafka_topic: Any, pool: Any
) -> None:
    topic = kafka_topic("batched")
    sizes: list[int] = []
    statements: list[int] = []

    async def handler(batch: EventBatch) -> None:
        sizes.append(len(batch.events))
        assert [d.offset for d in batch.deliveries] == sorted(d.offset for d in batch.deliveries)
        statements.append(1)
        await store(batch)

    sent = [event(f"k{i % 3}", i) for i in range(60)]
    await backend.publish_many(topic, sent)
    await backend.publish_many(topic, sent[:10])  # redelivered duplicates: stored once
    inbox = Inbox(pool, consumer=f"batch-{uuid.uuid4().hex[:6]}")
    consumer = backend.consumer([topic], None, batch_handler=handler, inbox=inbox)
    await run_until(consumer, lambda: consumer.handled == 70)
    rows = await pool.fetch("SELECT subject, n FROM stored ORDER BY n")
    assert [r["n"] for r in rows] == list(range(60))
    assert sum(sizes) == 60  # the 10 duplicates never reached the handler
    assert max(sizes) > 1 and len(statements) < 60  # batches, not a statement per event


async def test_a_failing_batch_is_handled_one_by_one_so_only_the_bad_event_is_retried(
    backend: Backend, kafka_topic: Any, pool: Any
) -> None:
    topic = kafka_topic("one-bad")
    singles: list[int] = []

    async def handler(batch: EventBatch) -> None:
        if any(e.data["n"] == 3 for e in batch.events):
            raise ValueError("event 3 cannot be stored")
        if len(batch.events) == 1:
            singles.append(batch.events[0].data["n"])
        await store(batch)

    for i in range(6):
        await backend.publish(topic, event("same-key", i))
    inbox = Inbox(pool, consumer=f"bad-{uuid.uuid4().hex[:6]}")
    consumer = backend.consumer(
        [topic], None, batch_handler=handler, inbox=inbox, retry_delays=(0.05,)
    )
    await run_until(consumer, lambda: consumer.dead_lettered == 1)
    rows = await pool.fetch("SELECT n FROM stored ORDER BY n")
    assert [r["n"] for r in rows] == [0, 1, 2, 4, 5]
    (dead,) = await backend.read(f"{topic}.dlt", 1)
    assert "event 3 cannot be stored" in dict(dead.headers)["tracseq-error"].decode()
    assert 3 not in singles


async def test_a_database_outage_pauses_a_batch_instead_of_dead_lettering(
    kafka_topic: Any, pool: Any
) -> None:
    broker, topic = InMemoryBroker(), kafka_topic("outage")
    calls: list[int] = []

    async def handler(batch: EventBatch) -> None:
        calls.append(len(batch.events))
        if len(calls) == 1:
            raise ConnectionRefusedError("database down")
        await store(batch)

    for i in range(4):
        await broker.publish(topic, event("k", i))
    consumer = EventConsumer(
        topics=[topic],
        group_id=f"g-{uuid.uuid4().hex[:6]}",
        batch_handler=handler,
        broker=broker,
        inbox=Inbox(pool, consumer=f"o-{uuid.uuid4().hex[:6]}"),
        pause_on=(ConnectionError,),
        poll_timeout=0.05,
    )
    await run_until(consumer, lambda: consumer.handled == 4)
    assert calls == [4, 4]  # the whole batch again after the pause, not one by one
    assert consumer.dead_lettered == consumer.retried == 0
    assert await pool.fetchval("SELECT count(*) FROM stored") == 4


async def test_invalid_messages_are_dead_lettered_and_the_rest_batched(
    backend: Backend, kafka_topic: Any
) -> None:
    topic = kafka_topic("mixed")
    got: list[int] = []

    async def handler(batch: EventBatch) -> None:
        got.extend(e.data["n"] for e in batch.events)

    await backend.publish(topic, event("k", 1))
    await backend.publish_raw(topic, b"\x00garbage")
    await backend.publish(topic, event("k", 2))
    consumer = backend.consumer([topic], None, batch_handler=handler)
    await run_until(consumer, lambda: consumer.handled == 2 and consumer.dead_lettered == 1)
    assert got == [1, 2]


def test_one_kind_of_handler() -> None:
    async def single(e: Any, d: Any) -> None:
        pass

    async def batch(b: EventBatch) -> None:
        pass

    with pytest.raises(ConfigurationError, match="exactly one"):
        EventConsumer(topics=["t"], group_id="g", broker=InMemoryBroker())
    with pytest.raises(ConfigurationError, match="exactly one"):
        EventConsumer(
            topics=["t"], group_id="g", handler=single, batch_handler=batch, broker=InMemoryBroker()
        )


async def test_the_tables_own_key_dedupes_a_batch_without_an_inbox(
    backend: Backend, kafka_topic: Any, pool: Any
) -> None:
    topic = kafka_topic("keyed")

    async def handler(batch: EventBatch) -> None:
        rows = [(e.source, e.id, e.subject, e.data["n"]) for e in batch.events]
        async with pool.acquire() as conn:
            await store_new_rows(conn, "stored", rows, columns=["source", "id", "subject", "n"])

    sent = [event(f"k{i % 4}", i) for i in range(40)]
    await backend.publish_many(topic, sent)
    await backend.publish_many(topic, sent[5:15])  # redelivered
    consumer = backend.consumer([topic], None, batch_handler=handler)
    await run_until(consumer, lambda: consumer.handled == 50)
    assert [r["n"] for r in await pool.fetch("SELECT n FROM stored ORDER BY n")] == list(range(40))
