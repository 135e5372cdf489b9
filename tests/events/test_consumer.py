"""One contract for EventConsumer, run on the InMemoryBroker and on a real
Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
import weakref
from typing import Any

import asyncpg
import pytest
from events_support import Backend, event, run_until

from tracseq_kit.events import (
    DLT_HEADERS,
    CloudEvent,
    Delivery,
    EventConsumer,
    EventPublisher,
    Inbox,
    InMemoryBroker,
    migrate,
)
from tracseq_kit.telemetry import metrics_registry
from tracseq_kit.testing import PostgresSchema

pytestmark = pytest.mark.anyio


async def test_every_event_once_in_order_per_key(backend: Backend, kafka_topic: Any) -> None:
    topic = kafka_topic("orders")
    seen: list[tuple[str, int]] = []

    async def handler(e: CloudEvent[Any], d: Delivery) -> None:
        seen.append((e.subject or "", e.data["n"]))

    for i in range(30):
        await backend.publish(topic, event(f"k{i % 3}", i))
    consumer = backend.consumer([topic], handler)
    await run_until(consumer, lambda: len(seen) >= 30)
    assert sorted(n for _, n in seen) == list(range(30))
    for k in range(3):
        assert [n for key, n in seen if key == f"k{k}"] == list(range(k, 30, 3))


async def test_failures_go_through_retry_topics_then_succeed(
    backend: Backend, kafka_topic: Any
) -> None:
    topic = kafka_topic("flaky")
    attempts: list[int] = []

    async def handler(e: CloudEvent[Any], d: Delivery) -> None:
        attempts.append(d.attempt)
        if d.attempt < 3:
            raise RuntimeError("transient")

    await backend.publish(topic, event("k", 1))
    consumer = backend.consumer([topic], handler, retry_delays=(0.05, 0.05))
    await run_until(consumer, lambda: consumer.handled == 1)
    assert attempts == [1, 2, 3]
    assert consumer.retried == 2 and consumer.dead_lettered == 0
    consumed = {  # by the original topic, whichever retry topic it came through
        outcome: metrics_registry().get_sample_value(
            "tracseq_events_consumed_total",
            {"group": consumer.group_id, "topic": topic, "outcome": outcome},
        )
        for outcome in ("handled", "retried", "dead_lettered")
    }
    assert consumed == {"handled": 1.0, "retried": 2.0, "dead_lettered": None}


async def test_a_dependency_outage_pauses_the_partition_instead_of_dead_lettering(
    backend: Backend, kafka_topic: Any
) -> None:
    topic = kafka_topic("outage")
    back_at: list[float] = []  # the outage lasts 2.5 s from the first delivery
    seen: list[int] = []

    async def handler(e: CloudEvent[Any], d: Delivery) -> None:
        back_at.append(back_at[0] if back_at else time.monotonic() + 2.5)
        if time.monotonic() < back_at[0]:
            raise ConnectionRefusedError("database down")
        seen.append(e.data["n"])

    for n in range(3):
        await backend.publish(topic, event("k", n))
    consumer = backend.consumer(
        [topic], handler, retry_delays=(0.05,), pause_on=(ConnectionError,), max_pause=1.0
    )
    await run_until(consumer, lambda: consumer.handled == 3)
    assert seen == [0, 1, 2]  # in order, none skipped, none forwarded
    assert (consumer.retried, consumer.dead_lettered) == (0, 0)
    labels = {"group": consumer.group_id, "topic": topic, "outcome": "paused"}
    paused = metrics_registry().get_sample_value("tracseq_events_consumed_total", labels)
    assert paused is not None and 2 <= paused <= 5  # 0.5 s... doubling, capped at 1 s


async def test_the_counts_of_a_consumer_that_is_gone_remain(kafka_topic: Any) -> None:
    broker, topic = InMemoryBroker(), kafka_topic("gone")
    await broker.publish(topic, event("k", 1))

    async def handler(e: CloudEvent[Any], d: Delivery) -> None:
        pass

    consumer = EventConsumer(
        topics=[topic], group_id=f"g-{uuid.uuid4().hex[:8]}", handler=handler, broker=broker
    )
    await run_until(consumer, lambda c=consumer: c.handled == 1)  # type: ignore[misc]
    group, gone = consumer.group_id, weakref.ref(consumer)
    del consumer  # a consumer replaced after a failure: its counts stay in the totals
    gc.collect()
    assert gone() is None
    labels = {"group": group, "topic": topic, "outcome": "handled"}
    assert metrics_registry().get_sample_value("tracseq_events_consumed_total", labels) == 1.0


async def test_poison_message_ends_in_the_dead_letter_topic(
    backend: Backend, kafka_topic: Any
) -> None:
    topic = kafka_topic("poison")

    async def handler(e: CloudEvent[Any], d: Delivery) -> None:
        raise ValueError("cannot handle sample s-1")

    await backend.publish(topic, event("k", 1))
    consumer = backend.consumer([topic], handler, retry_delays=(0.05,))
    await run_until(consumer, lambda: consumer.dead_lettered == 1)
    labels = {"group": consumer.group_id, "topic": topic, "outcome": "dead_lettered"}
    assert metrics_registry().get_sample_value("tracseq_events_consumed_total", labels) == 1.0
    (dead,) = await backend.read(f"{topic}.dlt", 1)
    headers = {k: bytes(v).decode() for k, v in dead.headers}
    assert set(DLT_HEADERS) <= set(headers)
    assert headers["tracseq-original-topic"] == topic
    assert headers["tracseq-original-offset"] == "0"
    assert headers["tracseq-attempt"] == "2"
    assert "cannot handle sample s-1" in headers["tracseq-error"]


async def test_an_invalid_message_is_dead_lettered_at_once(
    backend: Backend, kafka_topic: Any
) -> None:
    topic = kafka_topic("garbage")
    called = False

    async def handler(e: CloudEvent[Any], d: Delivery) -> None:
        nonlocal called
        called = True

    await backend.publish_raw(topic, b"\x00not a cloud event")
    consumer = backend.consumer([topic], handler)
    await run_until(consumer, lambda: consumer.dead_lettered == 1)
    assert not called
    (dead,) = await backend.read(f"{topic}.dlt", 1)
    assert dict(dead.headers)["tracseq-attempt"] == b"1"


async def test_a_waiting_retry_does_not_block_other_events(
    backend: Backend, kafka_topic: Any
) -> None:
    topic = kafka_topic("busy")
    handled: list[int] = []

    async def handler(e: CloudEvent[Any], d: Delivery) -> None:
        if e.data["n"] == 0 and d.attempt == 1:
            raise RuntimeError("retry me later")
        handled.append(e.data["n"])

    await backend.publish(topic, event("slow-key", 0))
    for i in range(1, 6):
        await backend.publish(topic, event(f"k{i}", i))
    consumer = backend.consumer([topic], handler, retry_delays=(2.0,))
    loop = asyncio.get_running_loop()
    start = loop.time()
    await run_until(consumer, lambda: len(handled) >= 5)
    assert sorted(handled) == [1, 2, 3, 4, 5]
    assert loop.time() - start < 20
    assert 0 not in handled  # still waiting for its retry


async def test_inbox_gives_redelivered_events_one_effect(
    backend: Backend, kafka_topic: Any, postgres_schema: PostgresSchema
) -> None:
    pool = await asyncpg.create_pool(postgres_schema.dsn, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            await conn.execute("CREATE TABLE IF NOT EXISTS effects (event_id text)")
            await conn.execute("TRUNCATE effects")
        topic = kafka_topic("dupes")

        async def handler(e: CloudEvent[Any], d: Delivery) -> None:
            await d.conn.execute("INSERT INTO effects VALUES ($1)", e.id)

        e = event("k", 1)
        for _ in range(3):  # the same event delivered three times
            await backend.publish(topic, e)
        consumer = backend.consumer(
            [topic], handler, inbox=Inbox(pool, consumer=f"inbox-{uuid.uuid4().hex[:6]}")
        )
        await run_until(consumer, lambda: consumer.handled == 3)
        assert await pool.fetchval("SELECT count(*) FROM effects") == 1
    finally:
        await pool.close()


async def test_shutdown_lets_the_in_flight_handler_finish_and_commits(
    backend: Backend, kafka_topic: Any
) -> None:
    topic = kafka_topic("drain")
    started = asyncio.Event()
    finished: list[int] = []

    async def handler(e: CloudEvent[Any], d: Delivery) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(e.data["n"])

    await backend.publish(topic, event("k", 1))
    consumer = backend.consumer([topic], handler, shutdown_timeout=5)
    runner = asyncio.create_task(consumer.run())
    await asyncio.wait_for(started.wait(), 30)
    consumer.stop()
    await asyncio.wait_for(runner, 20)
    assert finished == [1]
    if backend.broker is not None:
        tp_offsets = [backend.broker.committed(consumer.group_id, topic, p) for p in range(3)]
        assert 1 in tp_offsets


async def test_shutdown_is_bounded_for_a_hanging_handler(kafka_topic: Any) -> None:
    broker = InMemoryBroker()
    topic = kafka_topic("hang")
    started = asyncio.Event()

    async def handler(e: CloudEvent[Any], d: Delivery) -> None:
        started.set()
        await asyncio.sleep(3600)

    await broker.publish(topic, event("k", 1))
    consumer = EventConsumer(
        topics=[topic],
        group_id="g",
        handler=handler,
        broker=broker,
        shutdown_timeout=0.2,
        poll_timeout=0.05,
    )
    runner = asyncio.create_task(consumer.run())
    await asyncio.wait_for(started.wait(), 5)
    consumer.stop()
    await asyncio.wait_for(runner, 5)
    # Not committed: the event will be delivered again.
    assert all(broker.committed("g", topic, p) is None for p in range(3))


def test_configuration_errors() -> None:
    from tracseq_kit import ConfigurationError

    async def handler(e: CloudEvent[Any], d: Delivery) -> None:
        pass

    with pytest.raises(ConfigurationError):
        EventConsumer(topics=["t"], group_id="g", handler=handler)
    with pytest.raises(ConfigurationError):
        EventConsumer(topics=[], group_id="g", handler=handler, broker=InMemoryBroker())


async def test_a_topic_pattern_follows_matching_topics_and_their_retries(
    backend: Backend, kafka_topic: Any
) -> None:
    base = kafka_topic("lab").replace(".", "-")
    seen: list[tuple[str, int]] = []

    async def handler(e: CloudEvent[Any], d: Delivery) -> None:
        if e.data["n"] == 2 and d.attempt == 1:
            raise RuntimeError("once")
        seen.append((d.topic, e.data["n"]))

    await backend.publish(f"{base}.samples", event("k", 1))
    await backend.publish(f"{base}.other", event("k", 99))  # not matched
    consumer = backend.consumer(
        [],
        handler,
        topic_pattern=rf"{base}\.(samples|runs)(\.retry\.\d+)?$",
        retry_delays=(0.05,),
    )
    runner = asyncio.create_task(consumer.run())
    try:
        await asyncio.sleep(0.5)
        await backend.publish(f"{base}.runs", event("k", 2))  # created after the start
        async with asyncio.timeout(40):
            while len(seen) < 2:  # noqa: ASYNC110 - polls the handler's list
                await asyncio.sleep(0.05)
    finally:
        consumer.stop()
        await asyncio.wait_for(runner, 20)
    assert sorted(n for _, n in seen) == [1, 2]
    assert (f"{base}.runs.retry.1", 2) in seen


# The embedded broker (librdkafka's mock cluster) waits the session timeout less 1 s on
# every rebalance; 2.5 s is the lowest session timeout its 3 s first join survives.
EMBEDDED_GROUP_OPTIONS = {"session_timeout_ms": 2500, "heartbeat_interval_ms": 500}


async def test_a_new_matching_topic_is_found_within_two_seconds_and_consumed(
    kafka_bootstrap: str, kafka_topic: Any
) -> None:
    base = kafka_topic("fresh").replace(".", "-")
    seen: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()

    async def handler(e: CloudEvent[Any], d: Delivery) -> None:
        seen.append((d.topic, loop.time()))

    consumer = EventConsumer(
        topic_pattern=rf"{base}\.[a-z]+$",
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        handler=handler,
        bootstrap_servers=kafka_bootstrap,
        poll_timeout=0.1,
        **EMBEDDED_GROUP_OPTIONS,
    )
    runner = asyncio.create_task(consumer.run())
    try:
        async with EventPublisher(kafka_bootstrap) as publisher:
            await publisher.publish(f"{base}.first", event("k", 1))
            async with asyncio.timeout(30):  # the consumer has joined and consumes
                while not seen:  # noqa: ASYNC110 - polls the handler's list
                    await asyncio.sleep(0.02)
            created = loop.time()
            await publisher.publish(f"{base}.second", event("k", 2))
            async with asyncio.timeout(30):
                while f"{base}.second" not in consumer._consumer.subscription():  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            found = loop.time() - created
            async with asyncio.timeout(30):
                while len(seen) < 2:  # noqa: ASYNC110 - polls the handler's list
                    await asyncio.sleep(0.02)
    finally:
        consumer.stop()
        await asyncio.wait_for(runner, 20)
    handled = seen[1][1] - created
    assert found < 2.0  # topic_refresh = 1 s by default
    assert handled < 4.0  # + the embedded broker's 1.5 s rebalance wait, then a fetch
