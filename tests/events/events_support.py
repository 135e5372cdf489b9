"""Helpers shared by the events tests: read a topic, a migrated pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer

from tracseq_kit.events import migrate


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
