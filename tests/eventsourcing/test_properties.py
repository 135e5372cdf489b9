"""Invariants of the event store and projections, explored with hypothesis."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from eventsourcing_support import (
    TABLES,
    Sample,
    SamplesByStatus,
    passed,
    read_model,
    received,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracseq_kit import CommandRejectedError, ConcurrencyError
from tracseq_kit.eventsourcing import (
    EventStore,
    ExpectedVersion,
    PostgresEventStore,
    ProjectionRunner,
    RecordedEvent,
    Repository,
    StreamAppend,
    rebuild,
)

pytestmark = pytest.mark.anyio

FIXTURES = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


async def empty(pool: Any) -> None:
    await pool.execute(f"TRUNCATE {TABLES}")


# -- versions ------------------------------------------------------------------------

appends = st.lists(
    st.tuples(
        st.integers(0, 2),  # which stream
        st.integers(0, 3),  # how many events
        st.sampled_from(["right", "stale", "ahead", "any", "exists"]),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURES)
@given(ops=appends)
async def test_versions_are_gapless_per_stream(
    store: EventStore, ops: list[tuple[int, int, str]]
) -> None:
    run = uuid.uuid4().hex[:8]
    streams = [f"{run}-{i}" for i in range(3)]
    model = dict.fromkeys(streams, 0)
    for index, count, how in ops:
        s = streams[index]
        current = model[s]
        expected = {
            "right": current,
            "stale": current - 1,
            "ahead": current + 1,
            "any": ExpectedVersion.ANY,
            "exists": ExpectedVersion.STREAM_EXISTS,
        }[how]
        allowed = how in ("right", "any") or (how == "exists" and current > 0)
        if how == "stale" and current == 0:
            continue  # -1 would mean "any"
        events = [passed(s, str(n)) for n in range(count)]
        try:
            recorded = await store.append(
                s, events, stream_type="sample", expected_version=expected
            )
        except ConcurrencyError as exc:
            assert not allowed, f"{how} at {current} was refused"
            assert exc.actual == current
        else:
            assert allowed, f"{how} at {current} was accepted"
            assert [r.version for r in recorded] == list(range(current + 1, current + count + 1))
            model[s] = current + count
    for s in streams:
        assert [e.version for e in await store.read_stream(s)] == list(range(1, model[s] + 1))
    feed = [e for e in await store.read_all(limit=100_000) if e.stream_id.startswith(run)]
    assert [e.position for e in feed] == sorted({e.position for e in feed})


# -- concurrency ---------------------------------------------------------------------


@settings(max_examples=15, deadline=None, suppress_health_check=FIXTURES)
@given(writers=st.integers(2, 6), existing=st.integers(0, 3))
async def test_concurrent_appends_of_one_version_exactly_one_wins(
    pool: Any, writers: int, existing: int
) -> None:
    store = PostgresEventStore(pool, topic="tracseq.samples")
    s = f"S-{uuid.uuid4().hex[:8]}"
    if existing:
        await store.append(
            s, [passed(s) for _ in range(existing)], stream_type="sample", expected_version=0
        )

    async def attempt(n: int) -> str:
        try:
            async with store.transaction() as tx:  # each on a connection of its own
                await store.append(
                    s,
                    [passed(s, f"w{n}")],
                    stream_type="sample",
                    expected_version=existing,
                    conn=tx,
                )
                await asyncio.sleep(0)
        except ConcurrencyError:
            return "lost"
        return f"w{n}"

    outcomes = await asyncio.gather(*(attempt(n) for n in range(writers)))
    winners = [o for o in outcomes if o != "lost"]
    assert len(winners) == 1
    events = await store.read_stream(s)
    assert [e.version for e in events] == list(range(1, existing + 2))
    assert events[-1].data["by"] == winners[0]
    keys = await pool.fetch("SELECT key FROM tracseq_outbox WHERE key = $1", s)
    assert len(keys) == existing + 1  # the losers' outbox rows were rolled back


# -- projections ---------------------------------------------------------------------

commands = st.lists(
    st.tuples(st.integers(0, 5), st.sampled_from(["pass", "fail", "archive", "catch up"])),
    max_size=25,
)


async def play(
    samples: Repository[Sample], ids: list[str], script: list[tuple[int, str]], runner: Any
) -> None:
    """Apply the commands a lab would send (refused ones change nothing); ``catch up``
    runs one round of ``runner`` in between."""
    for index, command in script:
        if command == "catch up":
            try:
                await runner.run_once()
            except RuntimeError:  # a crash the test provokes: the batch was rolled back
                pass
            continue
        sample = await samples.load(ids[index])
        try:
            if command == "pass":
                sample.pass_qc(by="ann")
            elif command == "fail":
                sample.fail_qc(by="bob", reason="low yield")
            else:
                sample.archive(by="cy")
        except CommandRejectedError:
            continue
        await samples.save(sample)


@settings(max_examples=15, deadline=None, suppress_health_check=FIXTURES)
@given(script=commands, batch=st.integers(1, 8))
async def test_rebuild_gives_the_read_model_of_incremental_updates(
    pool: Any, script: list[tuple[int, str]], batch: int
) -> None:
    await empty(pool)
    store = PostgresEventStore(pool, topic=None)
    samples = Repository(Sample, store, source="/s")
    runner = ProjectionRunner(store, [SamplesByStatus()], batch_size=batch)
    ids = [f"S-{n}" for n in range(6)]
    await samples.save_all([Sample.receive(i, barcode=i) for i in ids])
    await play(samples, ids, script, runner)
    await runner.catch_up()
    incremental = await read_model(pool)
    expected = {}
    for i, sample in (await samples.load_many(ids)).items():
        expected[i] = (sample.state.status, sample.state.project, sample.version)
    assert incremental == expected  # one change per event: nothing applied twice or skipped
    assert await rebuild(store, SamplesByStatus(), batch_size=batch) == sum(
        v for _, _, v in expected.values()
    )
    assert await read_model(pool) == incremental


@settings(max_examples=15, deadline=None, suppress_health_check=FIXTURES)
@given(
    script=commands,
    batches=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    crash_after=st.integers(0, 3),
)
async def test_redelivery_changes_nothing(
    pool: Any, script: list[tuple[int, str]], batches: list[int], crash_after: int
) -> None:
    """Runners that know nothing, several at once, and a batch that fails after applying:
    events are seen again but applied once."""
    await empty(pool)

    class Crashing(SamplesByStatus):
        rounds = 0

        async def apply(self, conn: Any, events: Sequence[RecordedEvent[Any]]) -> None:
            await super().apply(conn, events)
            Crashing.rounds += 1
            if Crashing.rounds == crash_after:
                raise RuntimeError("crash after applying, before the commit")

    store = PostgresEventStore(pool, topic=None)
    samples = Repository(Sample, store, source="/s")
    ids = [f"S-{n}" for n in range(6)]
    await samples.save_all([Sample.receive(i, barcode=i) for i in ids])
    crashing = ProjectionRunner(store, [Crashing()], batch_size=2)
    await play(samples, ids, script, crashing)
    runners = [ProjectionRunner(store, [SamplesByStatus()], batch_size=b) for b in batches]
    for _ in range(2):
        try:
            await crashing.catch_up()
        except RuntimeError:
            pass
    await asyncio.gather(*(r.catch_up() for r in runners))
    await ProjectionRunner(store, [SamplesByStatus()]).catch_up()  # once more, from scratch
    delivered_once = await read_model(pool)
    await rebuild(store, SamplesByStatus())
    assert delivered_once == await read_model(pool)


# -- the outbox ----------------------------------------------------------------------

batches_of_appends = st.lists(
    st.lists(st.tuples(st.integers(0, 4), st.integers(1, 3)), min_size=1, max_size=5),
    min_size=1,
    max_size=5,
)


@settings(max_examples=20, deadline=None, suppress_health_check=FIXTURES)
@given(batches=batches_of_appends)
async def test_outbox_rows_are_in_stream_order(
    pool: Any, batches: list[list[tuple[int, int]]]
) -> None:
    await empty(pool)
    store = PostgresEventStore(pool, topic="tracseq.samples")
    versions = dict.fromkeys(range(5), 0)
    for batch in batches:
        parts: dict[int, int] = {}
        for stream, count in batch:  # one StreamAppend per stream and batch
            parts[stream] = parts.get(stream, 0) + count
        await store.append_many(
            [
                StreamAppend(
                    f"S-{s}",
                    [
                        received(f"S-{s}") if versions[s] == 0 and k == 0 else passed(f"S-{s}")
                        for k in range(n)
                    ],
                    "sample",
                    versions[s],
                )
                for s, n in parts.items()
            ]
        )
        for s, n in parts.items():
            versions[s] += n
    rows = await pool.fetch("SELECT key, headers FROM tracseq_outbox ORDER BY id")
    seen: dict[str, list[int]] = {}
    for row in rows:
        headers = dict(
            json.loads(row["headers"]) if isinstance(row["headers"], str) else row["headers"]
        )
        seen.setdefault(row["key"], []).append(int(headers["ce_streamversion"]))
    assert seen == {f"S-{s}": list(range(1, v + 1)) for s, v in versions.items() if v}
