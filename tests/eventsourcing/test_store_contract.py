"""One contract, two stores: InMemoryEventStore and PostgresEventStore on real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from eventsourcing_support import (
    QcPassed,
    SampleReceived,
    event,
    passed,
    received,
)

from tracseq_kit import ConcurrencyError, ConfigurationError, DuplicateEventError
from tracseq_kit.events import CloudEvent
from tracseq_kit.eventsourcing import EventStore, ExpectedVersion, Snapshot, StreamAppend

pytestmark = pytest.mark.anyio


def sid() -> str:
    return f"S-{uuid.uuid4().hex[:8]}"


def typed(store: EventStore) -> None:
    store.registry.register("tracseq.sample.received", SampleReceived)
    store.registry.register("tracseq.sample.qc_passed", QcPassed)


async def test_a_new_stream_gets_versions_from_one(store: EventStore) -> None:
    typed(store)
    s = sid()
    recorded = await store.append(
        s,
        [received(s), passed(s)],
        stream_type="sample",
        expected_version=ExpectedVersion.NO_STREAM,
    )
    assert [r.version for r in recorded] == [1, 2]
    assert recorded[0].position < recorded[1].position
    events = await store.read_stream(s)
    assert [e.version for e in events] == [1, 2]
    assert [e.id for e in events] == [r.id for r in recorded]
    assert events[0].data == SampleReceived(barcode="BC0", project="P-1")  # typed again
    assert events[1].stream_type == "sample" and events[1].stream_id == s
    assert await store.stream_version(s) == 2
    assert await store.stream_version(sid()) == 0
    assert await store.read_stream(sid()) == []


async def test_exact_expected_version_appends_after_it(store: EventStore) -> None:
    s = sid()
    await store.append(s, [received(s)], stream_type="sample", expected_version=0)
    recorded = await store.append(s, [passed(s)], stream_type="sample", expected_version=1)
    assert recorded[0].version == 2
    assert [e.version for e in await store.read_stream(s, after_version=1)] == [2]
    assert [e.version for e in await store.read_stream(s, to_version=1)] == [1]


@pytest.mark.parametrize("expected", [0, 2, 5])
async def test_a_stale_expected_version_is_a_concurrency_error(
    store: EventStore, expected: int
) -> None:
    s = sid()
    await store.append(s, [received(s)], stream_type="sample", expected_version=0)
    with pytest.raises(ConcurrencyError) as info:
        await store.append(s, [passed(s)], stream_type="sample", expected_version=expected)
    error = info.value
    assert (error.stream_id, error.actual) == (s, 1)
    assert error.expected == ("no stream" if expected == 0 else expected)
    assert s in str(error) and "reload" in str(error)
    assert not error.retriable
    assert await store.stream_version(s) == 1  # nothing was written


async def test_any_and_stream_exists(store: EventStore) -> None:
    s = sid()
    with pytest.raises(ConcurrencyError) as info:
        await store.append(
            s, [received(s)], stream_type="sample", expected_version=ExpectedVersion.STREAM_EXISTS
        )
    assert info.value.expected == "stream exists" and info.value.actual == 0
    first = await store.append(s, [received(s)], stream_type="sample", expected_version=-1)
    assert first[0].version == 1
    more = await store.append(
        s, [passed(s), passed(s)], stream_type="sample", expected_version=ExpectedVersion.ANY
    )
    assert [r.version for r in more] == [2, 3]
    exists = await store.append(
        s, [passed(s)], stream_type="sample", expected_version=ExpectedVersion.STREAM_EXISTS
    )
    assert exists[0].version == 4
    assert [e.event.extensions["streamversion"] for e in await store.read_stream(s)] == [1, 2, 3, 4]


async def test_an_empty_append_still_checks_the_expectation(store: EventStore) -> None:
    s = sid()
    assert await store.append(s, [], stream_type="sample", expected_version=0) == []
    await store.append(s, [received(s)], stream_type="sample", expected_version=0)
    with pytest.raises(ConcurrencyError):
        await store.append(s, [], stream_type="sample", expected_version=0)
    with pytest.raises(ConcurrencyError):
        await store.append(s, [], stream_type="sample", expected_version=3)
    assert await store.append(s, [], stream_type="sample", expected_version=1) == []


async def test_append_many_is_all_or_nothing(store: EventStore) -> None:
    a, b, c = sid(), sid(), sid()
    await store.append(b, [received(b)], stream_type="sample", expected_version=0)
    with pytest.raises(ConcurrencyError) as info:
        await store.append_many(
            [
                StreamAppend(a, [received(a)], "sample", 0),
                StreamAppend(b, [passed(b)], "sample", 0),  # b exists: the batch fails
                StreamAppend(c, [received(c)], "sample", 0),
            ]
        )
    assert info.value.stream_id == b
    assert await store.stream_version(a) == 0 and await store.stream_version(c) == 0
    recorded = await store.append_many(
        [
            StreamAppend(a, [received(a), passed(a)], "sample", 0),
            StreamAppend(b, [passed(b)], "sample", 1),
            StreamAppend(c, [received(c)], "sample", ExpectedVersion.ANY),
        ]
    )
    assert [(r.stream_id, r.version) for r in recorded] == [(a, 1), (a, 2), (b, 2), (c, 1)]
    positions = [r.position for r in recorded]
    assert positions == sorted(positions) and len(set(positions)) == 4


async def test_bad_appends_are_configuration_errors(store: EventStore) -> None:
    s = sid()
    with pytest.raises(ConfigurationError, match="twice"):
        await store.append_many(
            [StreamAppend(s, [received(s)], "sample", 0), StreamAppend(s, [], "sample", 0)]
        )
    with pytest.raises(ConfigurationError, match="key"):
        await store.append(s, [received("another")], stream_type="sample", expected_version=0)
    with pytest.raises(ConfigurationError, match="expected_version"):
        await store.append(s, [received(s)], stream_type="sample", expected_version=-3)
    with pytest.raises(ConfigurationError, match="stream_type"):
        await store.append(s, [received(s)], stream_type="", expected_version=0)
    with pytest.raises(ConfigurationError, match="streamversion"):
        await store.append(
            s,
            [event(s, QcPassed(by="x"), "tracseq.sample.qc_passed", streamversion=7)],
            stream_type="sample",
            expected_version=0,
        )
    assert await store.stream_version(s) == 0


async def test_an_event_without_a_subject_gets_the_stream_id(store: EventStore) -> None:
    s = sid()
    bare = CloudEvent[Any](source="/tests", type="tracseq.sample.noted", data={"note": "hi"})
    recorded = await store.append(s, [bare], stream_type="sample", expected_version=0)
    assert recorded[0].event.subject == s
    (stored,) = await store.read_stream(s)
    assert stored.event.subject == s and stored.data == {"note": "hi"}  # unregistered: JSON


async def test_a_duplicate_event_id_is_refused(store: EventStore) -> None:
    s, t = sid(), sid()
    first = received(s)
    await store.append(s, [first], stream_type="sample", expected_version=0)
    again = first.model_copy(update={"subject": t})
    with pytest.raises(DuplicateEventError) as info:
        await store.append(t, [received(t), again], stream_type="sample", expected_version=0)
    assert info.value.event_id == first.id
    assert await store.stream_version(t) == 0


async def test_read_all_in_global_order_with_filters(store: EventStore) -> None:
    start = await store.head_position()
    a, b = sid(), sid()
    await store.append(a, [received(a)], stream_type="sample", expected_version=0)
    await store.append(b, [received(b), passed(b)], stream_type="sample", expected_version=0)
    await store.append(a, [passed(a)], stream_type="sample", expected_version=1)
    head = await store.head_position()
    feed = await store.read_all(after_position=start)
    assert [(e.stream_id, e.version) for e in feed] == [(a, 1), (b, 1), (b, 2), (a, 2)]
    assert feed[-1].position == head
    assert len(await store.read_all(after_position=start, limit=2)) == 2
    passes = await store.read_all(after_position=start, types=["tracseq.sample.qc_passed"])
    assert [(e.stream_id, e.version) for e in passes] == [(b, 2), (a, 2)]
    upto = await store.read_all(after_position=start, to_position=feed[1].position)
    assert [e.id for e in upto] == [e.id for e in feed[:2]]
    assert await store.read_all(after_position=head) == []


async def test_read_streams_reads_several_at_once(store: EventStore) -> None:
    a, b, c = sid(), sid(), sid()
    await store.append(a, [received(a), passed(a)], stream_type="sample", expected_version=0)
    await store.append(b, [received(b)], stream_type="sample", expected_version=0)
    found = await store.read_streams({a: 1, b: 0, c: 0})
    assert [e.version for e in found[a]] == [2]
    assert [e.version for e in found[b]] == [1]
    assert found[c] == []


async def test_a_transaction_commits_or_rolls_back_all_its_appends(store: EventStore) -> None:
    a, b = sid(), sid()
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await store.append(a, [received(a)], stream_type="sample", expected_version=0, conn=tx)
            assert await store.stream_version(a, conn=tx) == 1  # it reads its own writes
            raise RuntimeError("the handler failed after appending")
    assert await store.stream_version(a) == 0
    async with store.transaction() as tx:
        await store.append(a, [received(a)], stream_type="sample", expected_version=0, conn=tx)
        await store.append(b, [received(b)], stream_type="sample", expected_version=0, conn=tx)
        await store.append(a, [passed(a)], stream_type="sample", expected_version=1, conn=tx)
        assert [e.version for e in await store.read_stream(a, conn=tx)] == [1, 2]
    assert await store.stream_version(a) == 2 and await store.stream_version(b) == 1


async def test_two_appends_with_the_same_expected_version_one_wins(store: EventStore) -> None:
    s = sid()
    await store.append(s, [received(s)], stream_type="sample", expected_version=0)
    outcomes: list[str] = []

    async def qc(by: str) -> None:
        try:
            async with store.transaction() as tx:
                await store.append(
                    s, [passed(s, by)], stream_type="sample", expected_version=1, conn=tx
                )
                await anyio.lowlevel.checkpoint()  # the other one runs while this one is open
        except ConcurrencyError as exc:
            assert exc.actual == 2
            outcomes.append("conflict")
        else:
            outcomes.append(by)

    async with anyio.create_task_group() as tg:
        tg.start_soon(qc, "ann")
        tg.start_soon(qc, "bob")
    assert outcomes.count("conflict") == 1 and len(outcomes) == 2
    winner = next(o for o in outcomes if o != "conflict")
    events = await store.read_stream(s)
    assert [e.version for e in events] == [1, 2] and events[1].data["by"] == winner


async def test_snapshots_keep_the_latest(store: EventStore) -> None:
    s = sid()
    await store.write_snapshots([Snapshot(s, "sample", 10, 1, '{"status": "received"}')])
    await store.write_snapshots([Snapshot(s, "sample", 20, 1, '{"status": "qc_passed"}')])
    await store.write_snapshots([Snapshot(s, "sample", 15, 1, '{"status": "stale"}')])
    found = await store.read_snapshots([s, sid()])
    assert list(found) == [s]
    assert found[s].version == 20 and '"qc_passed"' in found[s].state


async def test_data_round_trips_through_json(store: EventStore) -> None:
    typed(store)
    s = sid()
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    original = event(
        s, SampleReceived(barcode="B", project="P", at=at), "tracseq.sample.received", lab="x"
    )
    await store.append(s, [original], stream_type="sample", expected_version=0)
    (stored,) = await store.read_stream(s)
    assert stored.data == SampleReceived(barcode="B", project="P", at=at)
    assert stored.event.time == original.time and stored.event.source == "/tests"
    assert stored.event.extensions == {"lab": "x", "streamversion": 1}
    assert stored.recorded_at.tzinfo is not None
