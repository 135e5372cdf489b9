"""Helpers shared by the events tests: read a topic, a migrated pool, one backend API
over the InMemoryBroker and the Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tracseq_kit.events import CloudEvent, EventConsumer, EventPublisher, InMemoryBroker, migrate


async def read_topic(bootstrap: str, topic: str, n: int, *, settle_ms: int = 0) -> list[Any]:
    """The first ``n`` records of ``topic`` (then whatever arrives within ``settle_ms``)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    got: list[Any] = []
    try:
        async with asyncio.timeout(30):
            while len(got) < n:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    got.extend(records)
        if settle_ms:
            for records in (await consumer.getmany(timeout_ms=settle_ms)).values():
                got.extend(records)
    finally:
        await consumer.stop()
    return got


@asynccontextmanager
async def migrated_pool(dsn: str) -> AsyncIterator[Any]:
    """A pool on ``dsn`` with the outbox/inbox tables created and emptied."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            await conn.execute("TRUNCATE tracseq_outbox, tracseq_inbox")
        yield pool
    finally:
        await pool.close()


class Backend:
    """Publishing, consuming and reading raw topics on one kind of broker."""

    def __init__(self, kind: str, bootstrap: str | None) -> None:
        self.kind = kind
        self.bootstrap = bootstrap
        self.broker = InMemoryBroker() if kind == "memory" else None
        self.publisher: EventPublisher | None = None

    async def publish(self, topic: str, event: CloudEvent[Any]) -> None:
        if self.broker is not None:
            await self.broker.publish(topic, event)
        else:
            assert self.publisher is not None
            await self.publisher.publish(topic, event)

    async def publish_many(self, topic: str, events: list[CloudEvent[Any]]) -> None:
        if self.broker is not None:
            await self.broker.publish_many(topic, events)
        else:
            assert self.publisher is not None
            await self.publisher.publish_many(topic, events)

    async def publish_raw(self, topic: str, value: bytes) -> None:
        if self.broker is not None:
            self.broker._append(topic, b"k", value, [])
            return
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic, value, key=b"k")
        finally:
            await producer.stop()

    def consumer(self, topics: list[str], handler: Any, **options: Any) -> EventConsumer:
        group = options.pop("group_id", None) or f"g-{uuid.uuid4().hex[:8]}"
        if self.broker is None and "topic_pattern" in options:
            options.setdefault("metadata_max_age_ms", 300)  # find new topics quickly
        if self.broker is not None:
            return EventConsumer(
                topics=topics,
                group_id=group,
                handler=handler,
                broker=self.broker,
                poll_timeout=0.05,
                **options,
            )
        return EventConsumer(
            topics=topics,
            group_id=group,
            handler=handler,
            bootstrap_servers=self.bootstrap,
            poll_timeout=0.1,
            **options,
        )

    async def read(self, topic: str, n: int) -> list[Any]:
        if self.broker is not None:
            for _ in range(200):
                if len(self.broker.messages(topic)) >= n:
                    break
                await asyncio.sleep(0.02)
            return self.broker.messages(topic)
        assert self.bootstrap is not None
        return await read_topic(self.bootstrap, topic, n)


def event(key: str, n: int) -> CloudEvent[Any]:
    return CloudEvent[Any](source="/tests", type="tracseq.test", subject=key, data={"n": n})


async def run_until(consumer: EventConsumer, done: Callable[[], bool]) -> None:
    runner = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(40):
            while not done():
                if runner.done():
                    runner.result()
                await asyncio.sleep(0.02)
    finally:
        consumer.stop()
        await asyncio.wait_for(runner, 20)
