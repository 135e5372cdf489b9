"""Outbox and relay against the real PostgreSQL and the Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from events_support import migrated_pool, read_topic
from opentelemetry.sdk.trace import TracerProvider

from tracseq_kit.events import (
    CloudEvent,
    EventPublisher,
    Inbox,
    KafkaMessage,
    Outbox,
    OutboxRelay,
    from_kafka,
    migrate,
    running_relay,
)
from tracseq_kit.testing import PostgresSchema, TcpProxy

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pool(postgres_schema: PostgresSchema) -> AsyncIterator[Any]:
    async with migrated_pool(postgres_schema.dsn) as p:
        yield p


def event(key: str | None, n: int) -> CloudEvent[Any]:
    return CloudEvent[Any](source="/tests", type="tracseq.test", subject=key, data={"n": n})


async def write(pool: Any, outbox: Outbox, topic: str, events: list[CloudEvent[Any]]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for e in events:
            await outbox.add(conn, topic, e)


async def consume(bootstrap: str, topic: str, n: int) -> list[Any]:
    records = await read_topic(bootstrap, topic, n, settle_ms=500)  # nothing more may come
    return [from_kafka(KafkaMessage(r.key, r.value, list(r.headers))) for r in records]


async def pending(pool: Any) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM tracseq_outbox WHERE published_at IS NULL")
    )


async def test_add_is_part_of_the_callers_transaction(pool: Any) -> None:
    outbox = Outbox()
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            await outbox.add(conn, "t", event("k", 1))
            raise RuntimeError("the business write failed")
    assert await pending(pool) == 0
    await write(pool, outbox, "t", [event("k", 2)])
    assert await pending(pool) == 1


async def test_migrate_is_idempotent(pool: Any) -> None:
    async with pool.acquire() as conn:
        assert await migrate(conn) == []


async def test_relay_publishes_in_order_per_key_across_restarts(
    pool: Any, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    topic = kafka_topic("orders")
    outbox = Outbox()
    events = [event(f"key-{i % 4}", i) for i in range(60)]
    await write(pool, outbox, topic, events)
    async with EventPublisher(kafka_bootstrap) as publisher:
        first = OutboxRelay(pool, publisher, batch_size=2)
        await first.run_once()  # a partial round, then a "restart" with a new relay
        second = OutboxRelay(pool, publisher, batch_size=3)
        while await second.run_once():
            pass
    assert await pending(pool) == 0
    got = await consume(kafka_bootstrap, topic, 60)
    assert sorted(e.id for e in got) == sorted(e.id for e in events)
    for k in range(4):
        assert [e.data["n"] for e in got if e.subject == f"key-{k}"] == list(range(k, 60, 4))


async def test_two_relays_at_once_do_not_double_publish(
    pool: Any, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    topic = kafka_topic("pair")
    events = [event(f"k{i % 10}", i) for i in range(200)]
    await write(pool, Outbox(), topic, events)
    async with EventPublisher(kafka_bootstrap) as publisher:
        relays = [OutboxRelay(pool, publisher, batch_size=4) for _ in range(2)]

        async def drain(relay: OutboxRelay) -> None:
            while await pending(pool):
                await relay.run_once()

        await asyncio.gather(*(drain(r) for r in relays))
    got = await consume(kafka_bootstrap, topic, 200)
    assert len(got) == 200 and len({e.id for e in got}) == 200
    assert relays[0].published > 0 and relays[1].published > 0


async def test_no_loss_while_kafka_is_down(
    pool: Any, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    topic = kafka_topic("outage")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = f"127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    outbox = Outbox()
    events = [event(f"k{i % 5}", i) for i in range(100)]
    await write(pool, outbox, topic, events[:50])

    class DeadPublisher:
        async def publish_many(self, topic: str, messages: list[KafkaMessage]) -> int:
            from tracseq_kit import PublishError

            raise PublishError(f"no broker at {dead}")

    down = OutboxRelay(pool, DeadPublisher(), batch_size=50)
    with pytest.raises(Exception, match="not published"):
        await down.run_once()
    assert await pending(pool) == 50
    attempts = await pool.fetchval("SELECT min(attempts) FROM tracseq_outbox")
    assert attempts == 1
    await write(pool, outbox, topic, events[50:])  # writes go on during the outage
    async with EventPublisher(kafka_bootstrap) as publisher:
        relay = OutboxRelay(pool, publisher, poll_interval=0.05)
        runner = asyncio.create_task(relay.run())
        for _ in range(200):
            if not await pending(pool):
                break
            await asyncio.sleep(0.05)
        relay.stop()
        await asyncio.wait_for(runner, 10)
    got = await consume(kafka_bootstrap, topic, 100)
    assert sorted(e.id for e in got) == sorted(e.id for e in events)


async def test_relay_wakes_on_notify(pool: Any, kafka_bootstrap: str, kafka_topic: Any) -> None:
    topic = kafka_topic("notify")
    async with EventPublisher(kafka_bootstrap) as publisher:
        relay = OutboxRelay(pool, publisher, poll_interval=60)  # polling alone would be late
        runner = asyncio.create_task(relay.run())
        await asyncio.sleep(0.3)
        await write(pool, Outbox(), topic, [event("k", 1)])
        for _ in range(100):
            if relay.published:
                break
            await asyncio.sleep(0.05)
        relay.stop()
        await asyncio.wait_for(runner, 10)
    assert relay.published == 1


async def test_trace_context_survives_outbox_to_kafka(
    pool: Any, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    topic = kafka_topic("traced")
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("business write") as span:
        await write(pool, Outbox(), topic, [event("k", 1)])
        trace_id = format(span.get_span_context().trace_id, "032x")
    async with EventPublisher(kafka_bootstrap) as publisher:
        await OutboxRelay(pool, publisher).run_once()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 20)
    finally:
        await consumer.stop()
    traceparents = [v.decode() for k, v in record.headers if k == "traceparent"]
    assert len(traceparents) == 1 and trace_id in traceparents[0]


async def test_purge_and_inbox_dedupe(pool: Any, kafka_bootstrap: str, kafka_topic: Any) -> None:
    from datetime import timedelta

    await write(pool, Outbox(), kafka_topic("purge"), [event("k", 1)])
    async with EventPublisher(kafka_bootstrap) as publisher:
        kept = OutboxRelay(pool, publisher, retention=timedelta(microseconds=1))
        assert await kept.run_once() == 1
        assert await pool.fetchval("SELECT count(*) FROM tracseq_outbox") == 1  # marked
        assert await kept.purge() == 1
        await write(pool, Outbox(), kafka_topic("purge"), [event("k", 2)])
        assert await OutboxRelay(pool, publisher).run_once() == 1  # default: deleted at once
        assert await pool.fetchval("SELECT count(*) FROM tracseq_outbox") == 0
    inbox = Inbox(pool, consumer="group-a")
    effects: list[int] = []

    async def effect(conn: Any) -> None:
        effects.append(1)

    assert await inbox.process("/a", "evt-1", effect)
    assert not await inbox.process("/a", "evt-1", effect)

    async def failing(conn: Any) -> None:
        raise ValueError("handler bug")

    with pytest.raises(ValueError):
        await inbox.process("/a", "evt-2", failing)
    assert await inbox.process("/a", "evt-2", effect)  # not recorded after the failure
    assert effects == [1, 1]


async def test_add_many_keeps_the_given_order_in_one_statement(pool: Any) -> None:
    outbox = Outbox()
    events = [event("same-key", i) for i in range(25)]
    async with pool.acquire() as conn, conn.transaction():
        ids = await outbox.add_many(conn, "t", events)
    assert ids == sorted(ids) and len(ids) == 25
    rows = await pool.fetch("SELECT value FROM tracseq_outbox WHERE key = 'same-key' ORDER BY id")
    assert [json.loads(r["value"])["n"] for r in rows] == list(range(25))


async def test_a_service_starts_while_kafka_is_down_and_publishes_once_it_is_back(
    pool: Any, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    topic = kafka_topic("late-kafka")
    host, port = kafka_bootstrap.split(",")[0].rsplit(":", 1)
    outbox = Outbox()
    async with TcpProxy((host, int(port))) as proxy:
        proxy.cut()  # the bootstrap address refuses: Kafka is down
        started = time.monotonic()
        async with running_relay(pool, f"127.0.0.1:{proxy.port}", poll_interval=0.05):
            assert time.monotonic() - started < 1  # the service's lifespan goes on at once
            await write(pool, outbox, topic, [event("k", n) for n in range(3)])
            await asyncio.sleep(1.5)
            assert await pending(pool) == 3  # kept, not lost
            proxy.restore()
            for _ in range(300):
                if not await pending(pool):
                    break
                await asyncio.sleep(0.1)
            assert await pending(pool) == 0
    got = await consume(kafka_bootstrap, topic, 3)
    assert [e.data["n"] for e in got] == [0, 1, 2]


async def test_stopping_while_kafka_is_still_down_is_prompt(pool: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    async with running_relay(pool, dead):
        await asyncio.sleep(0.3)
    started = time.monotonic()
    async with running_relay(pool, dead, stop_timeout=2.0):
        pass
    assert time.monotonic() - started < 3


async def _waits_for_a_lock(pool: Any, pid: int) -> bool:
    state = await pool.fetchval("SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", pid)
    return state == "Lock"


async def test_same_key_writers_committing_out_of_id_order_keep_the_kafka_order(
    pool: Any, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    topic = kafka_topic("race")
    outbox = Outbox()
    async with pool.acquire() as first, pool.acquire() as second:
        early = first.transaction()
        await early.start()
        await outbox.add(first, topic, event("sample-1", 1))  # the lower id, still open
        late = second.transaction()
        await late.start()
        writing = asyncio.create_task(outbox.add(second, topic, event("sample-1", 2)))
        async with asyncio.timeout(20):  # either it waits for the key, or it wrote already
            while not writing.done() and not await _waits_for_a_lock(  # noqa: ASYNC110 - polls PostgreSQL
                pool, second.get_server_pid()
            ):
                await asyncio.sleep(0.02)
        async with EventPublisher(kafka_bootstrap) as publisher:
            relay = OutboxRelay(pool, publisher)
            committed_late = False
            if writing.done():  # no key lock: the higher id commits first
                await late.commit()
                committed_late = True
            await relay.run_once()  # publishes whatever is committed by now
            await early.commit()
            await asyncio.wait_for(writing, 20)
            if not committed_late:
                await late.commit()
            while await relay.run_once():
                pass
    got = await consume(kafka_bootstrap, topic, 2)
    assert [e.data["n"] for e in got] == [1, 2]


async def test_writers_of_other_keys_do_not_wait(pool: Any) -> None:
    outbox = Outbox()
    async with pool.acquire() as first, pool.acquire() as second:
        async with first.transaction():
            await outbox.add(first, "t", event("key-a", 1))
            async with second.transaction():  # a different key: no waiting
                await asyncio.wait_for(outbox.add(second, "t", event("key-b", 1)), 5)
                await asyncio.wait_for(outbox.add(second, "t", event(None, 2)), 5)


async def test_a_record_kafka_refuses_for_good_holds_back_only_its_key(pool: Any) -> None:
    from tracseq_kit import PublishError

    topic = "refusing"
    await write(pool, Outbox(), topic, [event("bad", 1), event("good", 2), event("bad", 3)])
    sent: list[int] = []

    class Refusing:
        async def publish_many(self, topic: str, messages: list[KafkaMessage]) -> int:
            error = PublishError("MessageSizeTooLargeError")
            error.retriable = False
            raise error

        async def send_message(self, topic: str, message: KafkaMessage) -> asyncio.Future[Any]:
            if message.key == b"bad":
                raise PublishError("MessageSizeTooLargeError")
            sent.append(json.loads(message.value or b"")["n"])
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    relay = OutboxRelay(pool, Refusing())
    with pytest.raises(Exception, match="not published"):
        await relay.run_once()
    assert sent == [2]
    left = await pool.fetch(
        "SELECT key, attempts FROM tracseq_outbox WHERE published_at IS NULL ORDER BY id"
    )
    assert [(r["key"], r["attempts"]) for r in left] == [("bad", 1), ("bad", 1)]


async def test_thousands_of_keys_in_one_transaction_hold_a_bounded_number_of_locks(
    pool: Any,
) -> None:
    # PostgreSQL's lock table is shared and small; a lock per key would run it out
    events = [
        CloudEvent[dict[str, int]](source="/t", type="t.bulk", subject=f"k-{i}", data={"i": i})
        for i in range(20_000)
    ]
    async with pool.acquire() as conn, conn.transaction():
        ids = await Outbox().add_many(conn, "bulk", events)
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
    assert len(ids) == 20_000 and ids == sorted(ids)
    assert 0 < held <= 256
