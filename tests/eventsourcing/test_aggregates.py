"""Aggregates and the repository: commands, guards, loading, saving, snapshots."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pytest
from eventsourcing_support import (
    Archived,
    QcPassed,
    Sample,
    SampleReceived,
    SampleState,
    received,
)
from pydantic import BaseModel

from tracseq_kit import (
    AggregateNotFoundError,
    CommandRejectedError,
    ConcurrencyError,
    ConfigurationError,
)
from tracseq_kit.events import EventRegistry, InMemoryBroker
from tracseq_kit.eventsourcing import (
    Aggregate,
    EventStore,
    InMemoryEventStore,
    Repository,
    applies,
)

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def sid() -> str:
    return f"S-{uuid.uuid4().hex[:8]}"


# -- the aggregate alone: no store, no I/O ------------------------------------------


def test_commands_record_events_and_change_state() -> None:
    sample = Sample.receive("S-1", barcode="BC1", project="P-7")
    sample.pass_qc(by="ann")
    assert sample.state == SampleState(
        status="qc_passed", barcode="BC1", project="P-7", qc_by="ann"
    )
    assert sample.version == 2 and sample.saved_version == 0
    assert sample.pending == (SampleReceived(barcode="BC1", project="P-7"), QcPassed(by="ann"))
    assert repr(sample) == "Sample(id='S-1', version=2)"


def test_a_guard_names_the_command_and_the_current_state() -> None:
    sample = Sample.receive("S-1", barcode="BC1")
    sample.fail_qc(by="ann", reason="degraded RNA")
    with pytest.raises(CommandRejectedError) as info:
        sample.pass_qc(by="bob")
    error = info.value
    assert str(error) == "cannot pass_qc sample 'S-1': it is qc_failed (allowed from: received)"
    assert (error.command, error.state, error.allowed) == ("pass_qc", "qc_failed", ("received",))
    assert (error.stream_type, error.aggregate_id) == ("sample", "S-1")
    assert sample.version == 2 and len(sample.pending) == 2  # nothing recorded


def test_require_with_a_reason() -> None:
    sample = Sample.receive("S-1", barcode="BC1")
    with pytest.raises(CommandRejectedError, match="a failed QC needs a reason") as info:
        sample.fail_qc(by="ann", reason="  ")
    assert info.value.state == "received" and info.value.allowed == ()


def test_an_enum_status_is_reported_by_value() -> None:
    class Stage(StrEnum):
        OPEN = "open"
        SHUT = "shut"

    class DoorState(BaseModel):
        status: Stage = Stage.OPEN

    class Shut(BaseModel):
        pass

    class Door(Aggregate[DoorState]):
        stream_type = "door"

        @applies("tracseq.door.shut", Shut)
        def _shut(self, data: Shut) -> None:
            self.state.status = Stage.SHUT

    door = Door("D-1")
    door.record(Shut())
    with pytest.raises(CommandRejectedError, match="it is shut"):
        door.require_status("shut", Stage.OPEN)


def test_declaration_mistakes_are_configuration_errors() -> None:
    class NoDefaults(BaseModel):
        barcode: str

    class Strict(Aggregate[NoDefaults]):
        stream_type = "strict"

    with pytest.raises(ConfigurationError, match="defaults"):
        Strict("x")

    class Nameless(Aggregate):  # type: ignore[type-arg]
        pass

    with pytest.raises(ConfigurationError, match="state model"):
        Nameless("x")

    class Stray(BaseModel):
        pass

    with pytest.raises(ConfigurationError, match="no applier"):
        Sample("S-1").record(Stray())
    with pytest.raises(ConfigurationError, match="non-empty id"):
        Sample("")
    with pytest.raises(ConfigurationError, match="two appliers"):

        class Twice(Aggregate[SampleState]):
            @applies("t.a", QcPassed)
            def _a(self, data: QcPassed) -> None: ...

            @applies("t.a", Archived)
            def _b(self, data: Archived) -> None: ...

    with pytest.raises(ConfigurationError, match="both"):

        class Shared(Aggregate[SampleState]):
            @applies("t.a", QcPassed)
            def _a(self, data: QcPassed) -> None: ...

            @applies("t.b", QcPassed)
            def _b(self, data: QcPassed) -> None: ...

    class NoStatus(BaseModel):
        n: int = 0

    class Counter(Aggregate[NoStatus]):
        stream_type = "counter"

    with pytest.raises(ConfigurationError, match="no `status`"):
        Counter("c").require_status("count", "x")


def test_a_subclass_inherits_and_overrides_appliers() -> None:
    class LoudSample(Sample):
        @applies("tracseq.sample.qc_passed", QcPassed)
        def _qc_passed(self, data: QcPassed) -> None:
            self.state.status = "qc_passed"
            self.state.qc_by = data.by.upper()

    sample = LoudSample.receive("S-1", barcode="B")
    sample.pass_qc(by="ann")
    assert sample.state.qc_by == "ANN" and sample.state.barcode == "B"
    assert LoudSample.event_types() == Sample.event_types()


# -- through the repository, on both stores -----------------------------------------


async def test_save_then_load_rebuilds_the_state(store: EventStore) -> None:
    samples = Repository(Sample, store, source="/sample-service", clock=lambda: T0)
    s = sid()
    recorded = await samples.save(Sample.receive(s, barcode="BC1"))
    assert [(r.type, r.version) for r in recorded] == [("tracseq.sample.received", 1)]
    assert recorded[0].event.source == "/sample-service" and recorded[0].event.time == T0
    assert recorded[0].event.extensions == {"streamversion": 1}
    loaded = await samples.load(s)
    loaded.pass_qc(by="ann")
    await samples.save(loaded)
    assert loaded.pending == () and loaded.saved_version == 2
    again = await samples.load(s)
    assert again.state.status == "qc_passed" and again.version == 2
    assert (await samples.load(s, version=1)).state.status == "received"


async def test_a_stale_save_is_a_concurrency_error_and_keeps_the_pending_events(
    store: EventStore,
) -> None:
    samples = Repository(Sample, store, source="/s")
    s = sid()
    await samples.save(Sample.receive(s, barcode="BC1"))
    ann, bob = await samples.load(s), await samples.load(s)
    ann.pass_qc(by="ann")
    bob.fail_qc(by="bob", reason="low volume")
    await samples.save(ann)
    with pytest.raises(ConcurrencyError) as info:
        await samples.save(bob)
    assert (info.value.expected, info.value.actual) == (1, 2)
    assert len(bob.pending) == 1
    with pytest.raises(ConcurrencyError, match="no stream"):
        await samples.save(Sample.receive(s, barcode="again"))  # registering twice


async def test_load_of_a_missing_or_foreign_stream(store: EventStore) -> None:
    samples = Repository(Sample, store, source="/s")
    with pytest.raises(AggregateNotFoundError, match="no sample with id 'nope'") as info:
        await samples.load("nope")
    assert isinstance(info.value, LookupError)
    box = sid()
    await store.append(box, [received(box)], stream_type="box", expected_version=0)
    with pytest.raises(AggregateNotFoundError) as info:
        await samples.load(box)
    assert "'box' events" in "".join(info.value.__notes__)


async def test_save_all_registers_many_at_once(store: EventStore) -> None:
    samples = Repository(Sample, store, source="/s")
    ids = [sid() for _ in range(50)]
    recorded = await samples.save_all(
        [Sample.receive(i, barcode=f"B{n}") for n, i in enumerate(ids)]
    )
    assert [r.stream_id for r in recorded] == ids
    loaded = await samples.load_many([*ids[:3], ids[0]])
    assert list(loaded) == ids[:3]
    assert [a.state.barcode for a in loaded.values()] == ["B0", "B1", "B2"]
    with pytest.raises(AggregateNotFoundError):
        await samples.load_many([ids[0], "missing"])
    assert await samples.save_all([]) == []


async def test_save_all_in_the_callers_transaction(store: EventStore) -> None:
    samples = Repository(Sample, store, source="/s")
    s = sid()
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await samples.save(Sample.receive(s, barcode="B"), conn=tx)
            raise RuntimeError("the rest of the request failed")
    with pytest.raises(AggregateNotFoundError):
        await samples.load(s)


async def test_snapshots_shorten_loads_and_are_ignored_when_stale(store: EventStore) -> None:
    samples = Repository(Sample, store, source="/s", snapshot_every=2)
    s = sid()
    sample = Sample.receive(s, barcode="B")
    await samples.save(sample)
    assert await store.read_snapshots([s]) == {}
    sample.pass_qc(by="ann")
    await samples.save(sample)  # crosses version 2
    snapshot = (await store.read_snapshots([s]))[s]
    assert snapshot.version == 2 and snapshot.schema_version == 1
    sample.archive(by="ann")
    await samples.save(sample)
    loaded = await samples.load(s)
    assert loaded.version == 3 and loaded.state.status == "archived"
    # a snapshot is only a shortcut: a corrupt one is ignored
    from tracseq_kit.eventsourcing import Snapshot

    await store.write_snapshots([Snapshot(s, "sample", 2, 1, '{"status": "bogus"}')])
    assert (await samples.load(s)).state.status == "archived"
    # as of an older version, a newer snapshot is not used
    assert (await samples.load(s, version=1)).state.status == "received"
    # the snapshot's state is what loads start from: prove it by planting one
    await store.write_snapshots(
        [Snapshot(s, "sample", 3, 1, SampleState(status="archived", barcode="X").model_dump_json())]
    )
    assert (await samples.load(s)).state.barcode == "X"
    assert (await samples.load_many([s]))[s].state.barcode == "X"

    class SampleV2(Sample):
        snapshot_version = 2

    assert (
        await Repository(SampleV2, store, source="/s", snapshot_every=2).load(s)
    ).state.barcode == "B"


def test_repository_configuration_errors() -> None:
    store = InMemoryEventStore()

    class Anonymous(Aggregate[SampleState]):
        pass

    with pytest.raises(ConfigurationError, match="stream_type"):
        Repository(Anonymous, store, source="/s")
    with pytest.raises(ConfigurationError, match="source"):
        Repository(Sample, store, source="")
    with pytest.raises(ConfigurationError, match="snapshot_every"):
        Repository(Sample, store, source="/s", snapshot_every=0)
    clash = EventRegistry()
    clash.register("tracseq.sample.received", QcPassed)
    with pytest.raises(ConfigurationError, match="already registered"):
        Repository(Sample, InMemoryEventStore(registry=clash), source="/s")


async def test_the_memory_store_publishes_committed_events_in_order() -> None:
    broker = InMemoryBroker()
    store = InMemoryEventStore(broker=broker, topic="tracseq.samples")
    samples = Repository(Sample, store, source="/s")
    sample = Sample.receive("S-1", barcode="B")
    sample.pass_qc(by="ann")
    async with store.transaction() as tx:
        await samples.save(sample, conn=tx)
        assert broker.messages("tracseq.samples") == []  # not before commit
    messages = broker.messages("tracseq.samples")
    assert [m.key for m in messages] == [b"S-1", b"S-1"]
    assert [dict(m.headers)["ce_streamversion"] for m in messages] == [b"1", b"2"]
    with pytest.raises(ConfigurationError):
        InMemoryEventStore(topic="t")
    with pytest.raises(ConfigurationError, match="transaction of this store"):
        await store.read_stream("S-1", conn=object())


async def test_a_naive_clock_is_a_configuration_error() -> None:
    naive = Repository(
        Sample, InMemoryEventStore(), source="/s", clock=lambda: datetime(2026, 1, 1)
    )
    with pytest.raises(ConfigurationError, match="clock"):
        await naive.save(Sample.receive("S-1", barcode="B"))


async def test_the_memory_store_uses_its_clock() -> None:
    store = InMemoryEventStore(clock=lambda: T0)
    recorded: list[Any] = await Repository(Sample, store, source="/s").save(
        Sample.receive("S-1", barcode="B")
    )
    assert recorded[0].recorded_at == T0
    assert (await store.read_stream("S-1"))[0].recorded_at == T0
