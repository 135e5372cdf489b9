"""Outbox → relay → Kafka → consumer with inbox, on the real servers: no loss, one
effect per event even with duplicates from a relay crash, trace context end to end."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from events_support import migrated_pool
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from tracseq_kit.events import (
    CloudEvent,
    Delivery,
    EventConsumer,
    EventPublisher,
    Inbox,
    KafkaMessage,
    Outbox,
    OutboxRelay,
)
from tracseq_kit.testing import PostgresSchema

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pool(postgres_schema: PostgresSchema) -> AsyncIterator[Any]:
    async with migrated_pool(postgres_schema.dsn) as p:
        async with p.acquire() as conn:
            await conn.execute("CREATE TABLE IF NOT EXISTS e2e_effects (event_id text, trace text)")
            await conn.execute("TRUNCATE e2e_effects")
        yield p


async def test_duplicates_after_a_relay_crash_have_one_effect_each(
    pool: Any, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    topic = kafka_topic("e2e")
    tracer = TracerProvider().get_tracer("e2e")
    outbox = Outbox()
    n = 60
    with tracer.start_as_current_span("create samples") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        async with pool.acquire() as conn, conn.transaction():
            for i in range(n):
                await outbox.add(
                    conn,
                    topic,
                    CloudEvent[Any](
                        source="/e2e", type="tracseq.e2e", subject=f"k{i % 6}", data={"n": i}
                    ),
                )

    async with EventPublisher(kafka_bootstrap) as publisher:
        # A relay that published the first 20 rows and crashed before marking them:
        rows = await pool.fetch("SELECT * FROM tracseq_outbox ORDER BY id LIMIT 20")
        for row in rows:
            headers = [(k, v.encode("latin-1")) for k, v in json.loads(row["headers"])]
            # with the trace context the outbox stored, as the relay sends it
            headers += [(k, v.encode()) for k, v in json.loads(row["trace_context"]).items()]
            fut = await publisher.send_message(
                row["topic"], KafkaMessage(row["key"].encode(), row["value"], headers)
            )
            await fut
        # ... then a relay runs normally and publishes everything, those 20 again.
        relay = OutboxRelay(pool, publisher, poll_interval=0.05)
        relay_task = asyncio.create_task(relay.run())

        async def handler(event: CloudEvent[Any], d: Delivery) -> None:
            current = format(trace.get_current_span().get_span_context().trace_id, "032x")
            await d.conn.execute("INSERT INTO e2e_effects VALUES ($1, $2)", event.id, current)

        consumer = EventConsumer(
            topics=[topic],
            group_id=f"e2e-{uuid.uuid4().hex[:6]}",
            handler=handler,
            bootstrap_servers=kafka_bootstrap,
            inbox=Inbox(pool, consumer="e2e"),
            poll_timeout=0.1,
        )
        consumer_task = asyncio.create_task(consumer.run())
        try:
            async with asyncio.timeout(60):
                while consumer.handled < n + 20:  # noqa: ASYNC110 - polls another task
                    await asyncio.sleep(0.05)
        finally:
            consumer.stop()
            relay.stop()
            await asyncio.wait_for(asyncio.gather(consumer_task, relay_task), 30)

    assert relay.published == n
    effects = await pool.fetch("SELECT event_id, trace FROM e2e_effects")
    assert len(effects) == n  # 80 deliveries, 60 effects
    assert len({r["event_id"] for r in effects}) == n
    assert {r["trace"] for r in effects} == {trace_id}
