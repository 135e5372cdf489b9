"""What only the PostgreSQL store does: the outbox, real concurrency, the append lock."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import anyio
import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from eventsourcing_support import Sample, SamplesByStatus, passed, read_model, received

from tracseq_kit import ConcurrencyError, ConfigurationError, DependencyUnavailableError
from tracseq_kit.events import EventPublisher, KafkaMessage, OutboxRelay, from_kafka
from tracseq_kit.eventsourcing import (
    ExpectedVersion,
    PostgresEventStore,
    ProjectionRunner,
    Repository,
    migrate,
)
from tracseq_kit.testing import PostgresSchema

pytestmark = pytest.mark.anyio


def sid() -> str:
    return f"S-{uuid.uuid4().hex[:8]}"


async def waiting_on_a_lock(pool: Any, count: int = 1) -> None:
    """Return once ``count`` other backends of this database wait on a lock."""
    with anyio.fail_after(10):
        while (  # noqa: ASYNC110 - polls the server's view of other connections
            await pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            < count
        ):
            await anyio.sleep(0.01)


async def outbox_rows(pool: Any) -> list[tuple[str, int, str]]:
    rows = await pool.fetch("SELECT key, headers, value FROM tracseq_outbox ORDER BY id")
    out = []
    for r in rows:
        message = KafkaMessage(r["key"].encode(), r["value"], [])
        headers = dict(r["headers"] if isinstance(r["headers"], list) else _json(r["headers"]))
        out.append((message.key.decode(), int(headers["ce_streamversion"]), headers["ce_type"]))
    return out


def _json(text: str) -> Any:
    import json

    return json.loads(text)


async def test_migrate_is_idempotent_and_missing_tables_are_named(
    pool: Any, postgres_dsn: str
) -> None:
    async with pool.acquire() as conn:
        assert await migrate(conn) == []
    name = f"es_empty_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(f"CREATE SCHEMA {name}")
    try:
        empty = await asyncpg.create_pool(postgres_dsn, server_settings={"search_path": name})
        store = PostgresEventStore(empty, topic=None)
        with pytest.raises(ConfigurationError, match="migrate"):
            await store.append("s", [received("s")], stream_type="sample", expected_version=0)
        with pytest.raises(ConfigurationError, match="migrate"):
            await store.read_stream("s")
        await empty.close()
    finally:
        await admin.execute(f"DROP SCHEMA {name} CASCADE")
        await admin.close()


async def test_appends_write_the_outbox_in_stream_order(pool: Any) -> None:
    store = PostgresEventStore(pool, topic="tracseq.samples")
    samples = Repository(Sample, store, source="/s")
    a, b = Sample.receive("A", barcode="1"), Sample.receive("B", barcode="2")
    a.pass_qc(by="ann")
    await samples.save_all([a, b])
    b2 = await samples.load("B")
    b2.fail_qc(by="bob", reason="low")
    await samples.save(b2)
    with pytest.raises(ConcurrencyError):  # rolled back: no outbox row either
        await samples.save(Sample.receive("A", barcode="dup"))
    await store.append("C", [received("C")], stream_type="sample", expected_version=-1)
    assert await outbox_rows(pool) == [
        ("A", 1, "tracseq.sample.received"),
        ("A", 2, "tracseq.sample.qc_passed"),
        ("B", 1, "tracseq.sample.received"),
        ("B", 2, "tracseq.sample.qc_failed"),
        ("C", 1, "tracseq.sample.received"),
    ]
    quiet = PostgresEventStore(pool, topic=None)
    await quiet.append("D", [received("D")], stream_type="sample", expected_version=0)
    assert len(await outbox_rows(pool)) == 5


async def test_kafka_sees_each_aggregate_in_order(
    pool: Any, kafka_bootstrap: str, kafka_topic: Any
) -> None:
    topic = kafka_topic("tracseq.samples")
    store = PostgresEventStore(pool, topic=topic)
    samples = Repository(Sample, store, source="/s")
    ids = [sid() for _ in range(6)]
    await samples.save_all([Sample.receive(i, barcode=i) for i in ids])
    for i in ids[::2]:
        sample = await samples.load(i)
        sample.pass_qc(by="ann")
        sample.archive(by="ann")
        await samples.save(sample)
    async with EventPublisher(kafka_bootstrap) as publisher:
        relay = OutboxRelay(pool, publisher, batch_size=4)
        while await relay.run_once():
            pass
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    got: list[Any] = []
    try:
        with anyio.fail_after(30):
            while len(got) < 12:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    got.extend(
                        from_kafka(KafkaMessage(r.key, r.value, list(r.headers))) for r in records
                    )
    finally:
        await consumer.stop()
    for i in ids:
        versions = [int(e.extensions["streamversion"]) for e in got if e.subject == i]
        assert versions == ([1, 2, 3] if ids.index(i) % 2 == 0 else [1])


async def test_concurrent_appends_of_one_version_on_real_connections(pool: Any) -> None:
    store = PostgresEventStore(pool, topic="tracseq.samples")
    s = sid()
    await store.append(s, [received(s)], stream_type="sample", expected_version=0)
    first_in = anyio.Event()
    release = anyio.Event()

    async def first() -> None:
        async with store.transaction() as tx:
            await store.append(
                s, [passed(s, "ann")], stream_type="sample", expected_version=1, conn=tx
            )
            first_in.set()
            await release.wait()  # keep the transaction open while the second one appends

    async def second() -> None:
        await first_in.wait()
        with pytest.raises(ConcurrencyError) as info:
            await store.append(s, [passed(s, "bob")], stream_type="sample", expected_version=1)
        assert (info.value.expected, info.value.actual) == (1, 2)

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        tg.start_soon(second)
        await first_in.wait()
        await waiting_on_a_lock(pool)  # the second append waits for the first's row
        release.set()
    events = await store.read_stream(s)
    assert [(e.version, e.data["by"]) for e in events[1:]] == [(2, "ann")]
    assert [k for k, _, _ in await outbox_rows(pool)].count(s) == 2


async def test_appends_with_known_versions_do_not_wait_for_each_other(pool: Any) -> None:
    store = PostgresEventStore(pool, topic="tracseq.samples")
    a, b = sid(), sid()
    release = anyio.Event()
    holding = anyio.Event()

    async def slow() -> None:
        async with store.transaction() as tx:
            await store.append(a, [received(a)], stream_type="sample", expected_version=0, conn=tx)
            holding.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow)
        await holding.wait()
        with anyio.fail_after(10):  # would hang if the append lock were exclusive
            await store.append(b, [received(b)], stream_type="sample", expected_version=0)
        release.set()
    assert await store.stream_version(a) == 1 and await store.stream_version(b) == 1


async def test_any_appends_to_one_stream_take_turns(pool: Any) -> None:
    store = PostgresEventStore(pool, topic=None)
    s = sid()
    await asyncio.gather(
        *(
            store.append(
                s, [passed(s, str(n))], stream_type="sample", expected_version=ExpectedVersion.ANY
            )
            for n in range(6)
        )
    )
    assert [e.version for e in await store.read_stream(s)] == [1, 2, 3, 4, 5, 6]


async def test_the_head_waits_for_appends_in_flight_and_nothing_is_skipped(pool: Any) -> None:
    store = PostgresEventStore(pool, topic=None)
    samples = Repository(Sample, store, source="/s")
    runner = ProjectionRunner(store, [SamplesByStatus()], head_wait=0.05)
    early, late = sid(), sid()
    release = anyio.Event()
    holding = anyio.Event()

    async def slow_writer() -> None:
        async with store.transaction() as tx:  # draws a position first, commits last
            await samples.save(Sample.receive(early, barcode="early"), conn=tx)
            holding.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(slow_writer)
        await holding.wait()
        await samples.save(Sample.receive(late, barcode="late"))  # a higher position, committed
        with pytest.raises(DependencyUnavailableError, match="in flight"):
            await store.head_position(max_wait=0.05)
        assert await runner.run_once() == 0  # the head is unknown: the round is skipped
        assert await read_model(pool) == {}
        release.set()
    assert await runner.catch_up() == 2
    assert set(await read_model(pool)) == {early, late}


async def test_a_batch_of_10000_is_one_append_statement(pool: Any) -> None:
    store = PostgresEventStore(pool, topic="tracseq.samples")
    samples = Repository(Sample, store, source="/s")
    calls: list[str] = []

    class Counting:
        def __init__(self, conn: Any) -> None:
            self._conn = conn

        def __getattr__(self, name: str) -> Any:
            attribute = getattr(self._conn, name)
            if name in ("execute", "executemany", "fetch", "fetchrow", "fetchval"):
                calls.append(name)
            return attribute

    aggregates = [Sample.receive(f"R-{n}", barcode=str(n)) for n in range(10_000)]
    async with pool.acquire() as conn, conn.transaction():
        await samples.save_all(aggregates, conn=Counting(conn))
    assert len(calls) <= 3  # outbox insert + its notify, then the append itself
    assert await pool.fetchval("SELECT count(*) FROM tracseq_es_events") == 10_000


async def test_a_connection_outside_a_transaction_gets_one(pool: Any) -> None:
    store = PostgresEventStore(pool, topic="tracseq.samples", inline=[SamplesByStatus()])
    s = sid()
    async with pool.acquire() as conn:
        assert not conn.is_in_transaction()
        await store.append(s, [received(s)], stream_type="sample", expected_version=0, conn=conn)
    assert await pool.fetchval("SELECT count(*) FROM tracseq_outbox") == 1
    assert s in await read_model(pool)


async def test_schemas_are_separate_stores(
    postgres_schema: PostgresSchema, postgres_dsn: str
) -> None:
    other = f"es_other_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(f"CREATE SCHEMA {other}")
    try:
        here = await asyncpg.create_pool(postgres_schema.dsn)
        there = await asyncpg.create_pool(postgres_dsn, server_settings={"search_path": other})
        async with there.acquire() as conn:
            await migrate(conn)
        s = sid()
        await PostgresEventStore(there, topic=None).append(
            s, [received(s)], stream_type="sample", expected_version=0
        )
        assert await PostgresEventStore(here, topic=None).stream_version(s) == 0
        await here.close()
        await there.close()
    finally:
        await admin.execute(f"DROP SCHEMA {other} CASCADE")
        await admin.close()


async def test_an_append_probes_the_index_instead_of_reading_the_table(pool: Any) -> None:
    """Appends must not slow down as the store grows: with generic plans, an EXISTS in
    the version check once became a hash join reading the whole table (seen right after
    a bulk registration, before the table was analyzed)."""
    store = PostgresEventStore(pool, topic="tracseq.samples")
    samples = Repository(Sample, store, source="/s")
    await samples.save_all([Sample.receive(f"F-{n}", barcode=str(n)) for n in range(20_000)])
    async with pool.acquire() as conn, conn.transaction():
        for n in range(8):  # past the point where plans turn generic
            sample = await samples.load(f"F-{n}", conn=conn)
            sample.pass_qc(by="ann")
            await samples.save(sample, conn=conn)
        await samples.save(Sample.receive(sid(), barcode="new"), conn=conn)
        scans = await conn.fetchval(
            "SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'tracseq_es_events'"
        )
    assert scans == 0
