"""DeadLetters on the InMemoryBroker and the Kafka-protocol broker: list and inspect
what a consumer dead-lettered, re-drive one or all, and consume them after a fix."""

from __future__ import annotations

from typing import Any

import pytest
from events_support import Backend, event, run_until

from tracseq_kit import DeadLetterNotFoundError
from tracseq_kit.events import REDRIVEN_FROM, CloudEvent, DeadLetters, Delivery

pytestmark = pytest.mark.anyio


def letters_of(backend: Backend) -> DeadLetters:
    if backend.broker is not None:
        return DeadLetters(broker=backend.broker, redrive_group="redrive")
    return DeadLetters(backend.bootstrap, redrive_group=f"redrive-{id(backend)}", timeout=20)


async def test_list_inspect_and_redrive_after_a_fix(backend: Backend, kafka_topic: Any) -> None:
    topic = kafka_topic("lab")
    fixed = False
    handled: list[int] = []

    async def handler(e: CloudEvent[Any], d: Delivery) -> None:
        if not fixed and e.data["n"] % 2:
            raise ValueError(f"sample {e.data['n']} has no site")
        handled.append(e.data["n"])

    sent = [event(f"k{n}", n) for n in range(5)]
    for e in sent:
        await backend.publish(topic, e)
    consumer = backend.consumer([topic], handler, retry_delays=())
    await run_until(consumer, lambda: consumer.dead_lettered == 2 and len(handled) == 3)

    async with letters_of(backend) as dlq:
        letters = await dlq.list(f"{topic}.dlt")
        assert sorted(letter.event_id or "" for letter in letters) == sorted(
            e.id for e in sent if e.data["n"] % 2
        )
        first = letters[0]
        assert first.original_topic == topic and first.attempts == 1
        assert "has no site" in first.error and first.event_type == "tracseq.test"
        assert first.original_offset is not None and first.original_partition is not None
        assert await dlq.get(first.topic, first.partition, first.offset) == first
        with pytest.raises(DeadLetterNotFoundError):
            await dlq.get(first.topic, first.partition, 10_000)

        fixed = True  # the handler is fixed; send the letters back
        await dlq.redrive(first)
        assert await dlq.redrive_all(f"{topic}.dlt") == 2
        assert await dlq.list(f"{topic}.dlt") == []  # passed by redrive_all
        assert len(await dlq.list(f"{topic}.dlt", include_redriven=True)) == 2

    again = backend.consumer([topic], handler, retry_delays=(), group_id=consumer.group_id)
    await run_until(again, lambda: len(handled) == 6)  # from where the group stopped
    twice = next(e.data["n"] for e in sent if e.id == first.event_id)  # alone, then in all
    assert sorted(handled) == sorted([0, 1, 2, 3, 4, twice])
    records = await backend.read(topic, 8)
    redriven = [r for r in records if REDRIVEN_FROM in dict(r.headers)]
    assert len(redriven) == 3  # one alone, then both
    assert all("tracseq-error" not in dict(r.headers) for r in redriven)


async def test_an_empty_or_missing_dead_letter_topic_lists_nothing(
    backend: Backend, kafka_topic: Any
) -> None:
    async with letters_of(backend) as dlq:
        assert await dlq.list(f"{kafka_topic('none')}.dlt") == []
        assert await dlq.redrive_all(f"{kafka_topic('none')}.dlt") == 0
