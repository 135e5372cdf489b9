"""EventPublisher against the real Kafka-protocol broker."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from events_support import read_topic
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from pydantic import BaseModel

from tracseq_kit import CircuitOpenError, PublishError, PublishTimeoutError
from tracseq_kit.events import CloudEvent, EventPublisher, EventRegistry, KafkaMessage, from_kafka
from tracseq_kit.resilience import CircuitBreaker

pytestmark = pytest.mark.anyio


class SampleReceived(BaseModel):
    sample_id: str


def event(i: int) -> CloudEvent[SampleReceived]:
    return CloudEvent[SampleReceived](
        source="/tests",
        type="tracseq.sample.received",
        subject=f"s-{i % 3}",
        data=SampleReceived(sample_id=f"s-{i}"),
    )


async def consume(bootstrap: str, topic: str, n: int) -> list[Any]:
    return await read_topic(bootstrap, topic, n)


async def test_publish_many_pipelines_and_round_trips(
    kafka_bootstrap: str, kafka_topic: Any
) -> None:
    topic = kafka_topic("samples")
    async with EventPublisher(kafka_bootstrap) as publisher:
        sent = [event(i) for i in range(50)]
        assert await publisher.publish_many(topic, sent) == 50
    records = await consume(kafka_bootstrap, topic, 50)
    registry = EventRegistry()
    registry.register("tracseq.sample.received", SampleReceived)
    decoded = [from_kafka(KafkaMessage(r.key, r.value, list(r.headers)), registry) for r in records]
    assert sorted(e.id for e in decoded) == sorted(e.id for e in sent)
    assert all(isinstance(e.data, SampleReceived) for e in decoded)
    # one key per subject: per-key order is the send order
    for subject in ("s-0", "s-1", "s-2"):
        mine = [e.data.sample_id for e in decoded if e.subject == subject]  # type: ignore[union-attr]
        assert mine == [e.data.sample_id for e in sent if e.subject == subject]  # type: ignore[union-attr]


async def test_trace_context_travels_in_headers(kafka_bootstrap: str, kafka_topic: Any) -> None:
    topic = kafka_topic("traced")
    tracer = TracerProvider().get_tracer("test")
    async with EventPublisher(kafka_bootstrap) as publisher:
        with tracer.start_as_current_span("publish") as span:
            await publisher.publish(topic, event(1))
            trace_id = format(span.get_span_context().trace_id, "032x")
    (record,) = await consume(kafka_bootstrap, topic, 1)
    headers = dict(record.headers)
    assert trace_id in headers["traceparent"].decode()
    assert trace.get_current_span() is trace.INVALID_SPAN


async def test_a_dead_broker_never_hangs_the_caller() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here
    publisher = EventPublisher(f"127.0.0.1:{port}", start_timeout=1.0, request_timeout_ms=1000)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises((PublishError, PublishTimeoutError)):
        await publisher.start()
    assert loop.time() - start < 5


async def test_open_breaker_fails_fast(kafka_bootstrap: str, kafka_topic: Any) -> None:
    breaker = CircuitBreaker("kafka", minimum_calls=1)
    breaker.force_open()
    async with EventPublisher(kafka_bootstrap, breaker=breaker) as publisher:
        with pytest.raises(CircuitOpenError):
            await publisher.publish(kafka_topic("x"), event(1))


async def test_publish_many_splits_full_batches_and_keeps_partitions_consistent(
    kafka_bootstrap: str, kafka_topic: Any
) -> None:
    topic = kafka_topic("batches")
    big = CloudEvent[SampleReceived](
        source="/tests",
        type="tracseq.sample.received",
        subject="s-0",
        data=SampleReceived(sample_id="x" * 3000),  # larger than a whole batch
    )
    sent = [event(i) for i in range(40)]
    async with EventPublisher(kafka_bootstrap, max_batch_size=1024) as publisher:
        await publisher.publish(topic, sent[0])  # single send first: same partition rule
        assert await publisher.publish_many(topic, [*sent[1:20], big, *sent[20:]]) == 40
    records = await consume(kafka_bootstrap, topic, 41)
    assert len(records) == 41
    by_key: dict[bytes, set[int]] = {}
    for r in records:
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values())  # one partition per key
    in_order = [
        json.loads(r.value)["sample_id"]
        for r in sorted(records, key=lambda r: r.offset)
        if r.key == b"s-1"
    ]
    assert in_order == [f"s-{i}" for i in range(1, 40, 3)]
