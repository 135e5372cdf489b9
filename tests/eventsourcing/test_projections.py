"""Projections on real PostgreSQL: inline, catch-up, rebuild, redelivery, checkpoints."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from eventsourcing_support import (
    QcPassed,
    Sample,
    SampleReceived,
    SamplesByStatus,
    read_model,
)

from tracseq_kit import ConfigurationError
from tracseq_kit.eventsourcing import (
    PostgresEventStore,
    Projection,
    ProjectionRunner,
    RecordedEvent,
    Repository,
    handles,
    rebuild,
)

pytestmark = pytest.mark.anyio


def sid() -> str:
    return f"S-{uuid.uuid4().hex[:8]}"


async def register(samples: Repository[Sample], n: int) -> list[str]:
    ids = [sid() for _ in range(n)]
    await samples.save_all([Sample.receive(i, barcode=f"B{k}") for k, i in enumerate(ids)])
    return ids


async def step(samples: Repository[Sample], sample_id: str, command: str) -> None:
    sample = await samples.load(sample_id)
    if command == "pass":
        sample.pass_qc(by="ann")
    elif command == "fail":
        sample.fail_qc(by="ann", reason="low yield")
    else:
        sample.archive(by="ann")
    await samples.save(sample)


async def test_an_inline_projection_commits_with_the_events(pool: Any) -> None:
    store = PostgresEventStore(pool, topic=None, inline=[SamplesByStatus()])
    samples = Repository(Sample, store, source="/s")
    (a,) = await register(samples, 1)
    assert await read_model(pool) == {a: ("received", "P-1", 1)}
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            sample = await samples.load(a, conn=tx)
            sample.pass_qc(by="ann")
            await samples.save(sample, conn=tx)
            assert (await read_model(tx))[a][0] == "qc_passed"  # same transaction
            raise RuntimeError("the request failed later")
    assert await read_model(pool) == {a: ("received", "P-1", 1)}
    await step(samples, a, "pass")
    assert await read_model(pool) == {a: ("qc_passed", "P-1", 2)}
    assert (await store.checkpoints())["samples_by_status"] == await store.head_position()


async def test_10000_registrations_reach_an_inline_projection_in_one_batch(pool: Any) -> None:
    calls: list[int] = []

    class Counting(SamplesByStatus):
        name = "counting"

        async def apply(self, conn: Any, events: Sequence[RecordedEvent[Any]]) -> None:
            calls.append(len(events))
            await super().apply(conn, events)

    store = PostgresEventStore(pool, topic="tracseq.samples", inline=[Counting()])
    samples = Repository(Sample, store, source="/s")
    ids = await register(samples, 10_000)
    assert calls == [10_000]
    assert len(await read_model(pool)) == 10_000
    assert await pool.fetchval("SELECT count(*) FROM tracseq_outbox") == 10_000
    assert (await samples.load(ids[-1])).state.barcode == "B9999"


async def test_a_new_inline_projection_catches_up_first(pool: Any) -> None:
    plain = Repository(Sample, PostgresEventStore(pool, topic=None), source="/s")
    old = await register(plain, 3)
    await step(plain, old[0], "pass")
    store = PostgresEventStore(pool, topic=None, inline=[SamplesByStatus()])
    samples = Repository(Sample, store, source="/s")
    (new,) = await register(samples, 1)
    model = await read_model(pool)
    assert set(model) == {*old, new}
    assert model[old[0]] == ("qc_passed", "P-1", 2)


async def test_the_runner_catches_up_and_reports_lag(pool: Any) -> None:
    store = PostgresEventStore(pool, topic=None)
    samples = Repository(Sample, store, source="/s")
    runner = ProjectionRunner(store, [SamplesByStatus()], batch_size=2)
    ids = await register(samples, 3)
    await step(samples, ids[1], "fail")
    assert (await runner.lag())["samples_by_status"] == 4
    assert await runner.run_once() == 2  # one batch per round
    assert await runner.catch_up() == 2
    assert await runner.run_once() == 0
    assert (await runner.lag())["samples_by_status"] == 0
    model = await read_model(pool)
    assert model[ids[1]] == ("qc_failed", "P-1", 2) and model[ids[0]][0] == "received"


async def test_events_of_other_types_move_the_checkpoint_too(pool: Any) -> None:
    class OnlyPasses(Projection):
        name = "only_passes"
        seen: list[str] = []

        @handles("tracseq.sample.qc_passed", QcPassed)
        async def _passed(self, conn: Any, event: RecordedEvent[QcPassed]) -> None:
            self.seen.append(event.stream_id)

    store = PostgresEventStore(pool, topic=None)
    samples = Repository(Sample, store, source="/s")
    projection = OnlyPasses()
    runner = ProjectionRunner(store, [projection], batch_size=1)
    ids = await register(samples, 5)
    await step(samples, ids[2], "pass")
    assert await runner.catch_up() == 1
    assert projection.seen == [ids[2]]
    assert (await runner.lag())["only_passes"] == 0


async def test_redelivery_and_a_second_runner_change_nothing(pool: Any) -> None:
    store = PostgresEventStore(pool, topic=None)
    samples = Repository(Sample, store, source="/s")
    ids = await register(samples, 20)
    for i in ids[:10]:
        await step(samples, i, "pass")
    first = ProjectionRunner(store, [SamplesByStatus()], batch_size=3)
    await first.catch_up()
    once = await read_model(pool)
    again = ProjectionRunner(store, [SamplesByStatus()], batch_size=7)  # fresh, knows nothing
    assert await again.catch_up() == 0
    assert await read_model(pool) == once
    await pool.execute("TRUNCATE samples_by_status, tracseq_es_checkpoints")
    pair = [ProjectionRunner(store, [SamplesByStatus()], batch_size=b) for b in (2, 5)]
    await asyncio.gather(*(r.catch_up() for r in pair))
    assert await read_model(pool) == once  # each event applied once: changes counts


async def test_a_failing_handler_rolls_its_batch_back(pool: Any) -> None:
    class Flaky(SamplesByStatus):
        name = "flaky"
        fail = True

        async def apply(self, conn: Any, events: Sequence[RecordedEvent[Any]]) -> None:
            await super().apply(conn, events)  # writes, then fails: all rolled back
            if self.fail:
                raise RuntimeError("handler bug")

    store = PostgresEventStore(pool, topic=None)
    samples = Repository(Sample, store, source="/s")
    ids = await register(samples, 2)
    projection = Flaky()
    runner = ProjectionRunner(store, [projection])
    with pytest.raises(RuntimeError):
        await runner.run_once()
    assert await read_model(pool) == {}
    assert (await runner.lag())["flaky"] == 2
    projection.fail = False
    await runner.catch_up()
    assert set(await read_model(pool)) == set(ids)


async def test_rebuild_replays_everything_into_an_empty_read_model(pool: Any) -> None:
    store = PostgresEventStore(pool, topic=None, inline=[SamplesByStatus()])
    samples = Repository(Sample, store, source="/s")
    ids = await register(samples, 30)
    for i in ids[:12]:
        await step(samples, i, "pass")
    for i in ids[:5]:
        await step(samples, i, "archive")
    incremental = await read_model(pool)
    await pool.execute("UPDATE samples_by_status SET status = 'corrupted'")
    assert await rebuild(store, SamplesByStatus(), batch_size=7) == 47
    assert await read_model(pool) == incremental
    (late,) = await register(samples, 1)  # inline goes on from the rebuilt checkpoint
    assert (await read_model(pool))[late] == ("received", "P-1", 1)


async def test_run_wakes_on_appends(pool: Any) -> None:
    store = PostgresEventStore(pool, topic=None)
    samples = Repository(Sample, store, source="/s")
    runner = ProjectionRunner(store, [SamplesByStatus()], poll_interval=3600)
    task = asyncio.create_task(runner.run())
    try:
        (a,) = await register(samples, 1)
        with anyio.fail_after(10):  # without the NOTIFY it would wait an hour
            while a not in await read_model(pool):  # noqa: ASYNC110 - polls the read model
                await anyio.sleep(0.02)
    finally:
        runner.stop()
        await task


async def test_projection_configuration_errors(pool: Any) -> None:
    class Unnamed(Projection):
        pass

    with pytest.raises(ConfigurationError, match="needs a `name`"):
        PostgresEventStore(pool, topic=None, inline=[Unnamed()])
    with pytest.raises(ConfigurationError, match="two projections"):
        PostgresEventStore(pool, topic=None, inline=[SamplesByStatus(), SamplesByStatus()])
    inline = PostgresEventStore(pool, topic=None, inline=[SamplesByStatus()])
    with pytest.raises(ConfigurationError, match="inline"):
        ProjectionRunner(inline, [SamplesByStatus()])
    with pytest.raises(ConfigurationError, match="batch_size"):
        ProjectionRunner(inline, [], batch_size=0)
    with pytest.raises(ConfigurationError, match="two handlers"):

        class Twice(Projection):
            @handles("t.x", QcPassed)
            async def _a(self, conn: Any, event: RecordedEvent[QcPassed]) -> None: ...

            @handles("t.x", QcPassed)
            async def _b(self, conn: Any, event: RecordedEvent[QcPassed]) -> None: ...

    class NoTables(Projection):
        name = "no_tables"

    with pytest.raises(ConfigurationError, match="declares no tables"):
        await rebuild(inline, NoTables())
    with pytest.raises(ConfigurationError, match="outbox needs a topic"):
        from tracseq_kit.events import Outbox

        PostgresEventStore(pool, topic=None, outbox=Outbox())


def test_a_projection_lists_its_event_types() -> None:
    assert SamplesByStatus.event_types()["tracseq.sample.received"] is SampleReceived
    assert len(SamplesByStatus.event_types()) == 4


async def test_run_retries_a_failing_round_and_logs_it(
    pool: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class FailsTwice(SamplesByStatus):
        name = "fails_twice"
        failures = 2

        async def apply(self, conn: Any, events: Sequence[RecordedEvent[Any]]) -> None:
            if self.failures:
                self.failures -= 1
                raise RuntimeError("handler bug")
            await super().apply(conn, events)

    store = PostgresEventStore(pool, topic=None)
    samples = Repository(Sample, store, source="/s")
    (a,) = await register(samples, 1)
    runner = ProjectionRunner(store, [FailsTwice()], poll_interval=3600, backoff=(0.01, 0.02))
    task = asyncio.create_task(runner.run())
    try:
        with anyio.fail_after(10):
            while a not in await read_model(pool):  # noqa: ASYNC110 - polls the read model
                await anyio.sleep(0.02)
    finally:
        runner.stop()
        await task
    failures = [r for r in caplog.records if "projection round failed" in r.getMessage()]
    assert len(failures) == 2 and "handler bug" in failures[0].getMessage()
