"""Producer and consumer spans after the OpenTelemetry messaging conventions, on the
Kafka-protocol broker: the publishing request's trace reaches the handler."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from events_support import migrated_pool
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import messaging_attributes as semconv
from opentelemetry.trace import SpanKind

from tracseq_kit.events import (
    CloudEvent,
    Delivery,
    EventBatch,
    EventConsumer,
    EventPublisher,
    Outbox,
    OutboxRelay,
)
from tracseq_kit.events import _tracing as names
from tracseq_kit.testing import PostgresSchema

pytestmark = pytest.mark.anyio


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(spans: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider


def test_the_attribute_names_are_the_conventions() -> None:
    assert names.SYSTEM == semconv.MESSAGING_SYSTEM
    assert names.OPERATION_TYPE == semconv.MESSAGING_OPERATION_TYPE
    assert names.OPERATION_NAME == semconv.MESSAGING_OPERATION_NAME
    assert names.DESTINATION == semconv.MESSAGING_DESTINATION_NAME
    assert names.PARTITION == semconv.MESSAGING_DESTINATION_PARTITION_ID
    assert names.OFFSET == semconv.MESSAGING_KAFKA_OFFSET
    assert names.MESSAGE_KEY == semconv.MESSAGING_KAFKA_MESSAGE_KEY
    assert names.MESSAGE_ID == semconv.MESSAGING_MESSAGE_ID
    assert names.CONSUMER_GROUP == semconv.MESSAGING_CONSUMER_GROUP_NAME
    assert names.BATCH_COUNT == semconv.MESSAGING_BATCH_MESSAGE_COUNT
    assert semconv.MessagingSystemValues.KAFKA.value == "kafka"


async def consume_until(consumer: EventConsumer, done: Any) -> None:
    runner = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(40):
            while not done():  # noqa: ASYNC110 - polls the handler's list
                await asyncio.sleep(0.02)
    finally:
        consumer.stop()
        await asyncio.wait_for(runner, 20)


async def test_publish_and_process_spans_share_the_requests_trace(
    kafka_bootstrap: str, kafka_topic: Any, provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    topic = kafka_topic("traced")
    event = CloudEvent[Any](source="/tests", type="tracseq.test", subject="s-1", data={"n": 1})
    request = provider.get_tracer("test").start_span("POST /api/samples")
    from opentelemetry import trace

    with trace.use_span(request, end_on_exit=True):
        async with EventPublisher(kafka_bootstrap, tracer_provider=provider) as publisher:
            await publisher.publish(topic, event)
    handled: list[int] = []

    async def handler(e: CloudEvent[Any], d: Delivery) -> None:
        handled.append(1)

    group = f"g-{uuid.uuid4().hex[:6]}"
    consumer = EventConsumer(
        topics=[topic],
        group_id=group,
        handler=handler,
        bootstrap_servers=kafka_bootstrap,
        poll_timeout=0.1,
        tracer_provider=provider,
    )
    await consume_until(consumer, lambda: handled)
    by_name = {s.name: s for s in spans.get_finished_spans()}
    send, process = by_name[f"send {topic}"], by_name[f"process {topic}"]
    assert send.kind == SpanKind.PRODUCER and process.kind == SpanKind.CONSUMER
    assert send.parent is not None and send.parent.span_id == request.get_span_context().span_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert process.context.trace_id == request.get_span_context().trace_id
    assert send.attributes is not None and process.attributes is not None
    assert send.attributes[names.SYSTEM] == "kafka" == process.attributes[names.SYSTEM]
    assert send.attributes[names.OPERATION_TYPE] == "send"
    assert process.attributes[names.OPERATION_TYPE] == "process"
    assert send.attributes[names.DESTINATION] == topic == process.attributes[names.DESTINATION]
    assert send.attributes[names.MESSAGE_ID] == event.id == process.attributes[names.MESSAGE_ID]
    assert send.attributes[names.PARTITION] == process.attributes[names.PARTITION]
    assert send.attributes[names.OFFSET] == process.attributes[names.OFFSET] == 0
    assert process.attributes[names.CONSUMER_GROUP] == group
    assert process.attributes[names.MESSAGE_KEY] == "s-1"


@pytest.fixture
async def pool(postgres_schema: PostgresSchema) -> AsyncIterator[Any]:
    async with migrated_pool(postgres_schema.dsn) as p:
        yield p


async def test_a_relayed_batch_links_to_its_writers_and_handlers_continue_their_traces(
    pool: Any,
    kafka_bootstrap: str,
    kafka_topic: Any,
    provider: TracerProvider,
    spans: InMemorySpanExporter,
) -> None:
    topic = kafka_topic("relayed")
    tracer = provider.get_tracer("test")
    writers = []
    for n in range(3):
        with tracer.start_as_current_span(f"request {n}") as span:
            writers.append(span.get_span_context())
            async with pool.acquire() as conn, conn.transaction():
                await Outbox().add(
                    conn, topic, CloudEvent[Any](source="/t", type="t", subject=f"k{n}", data=n)
                )
    async with EventPublisher(kafka_bootstrap, tracer_provider=provider) as publisher:
        assert await OutboxRelay(pool, publisher).run_once() == 3
    seen: list[int] = []

    async def handler(batch: EventBatch) -> None:
        seen.extend(e.data for e in batch.events)

    consumer = EventConsumer(
        topics=[topic],
        group_id=f"g-{uuid.uuid4().hex[:6]}",
        batch_handler=handler,
        bootstrap_servers=kafka_bootstrap,
        poll_timeout=0.1,
        tracer_provider=provider,
    )
    await consume_until(consumer, lambda: len(seen) == 3)
    finished = spans.get_finished_spans()
    (send,) = [s for s in finished if s.name == f"send {topic}"]
    assert send.attributes is not None and send.attributes[names.BATCH_COUNT] == 3
    assert {link.context.span_id for link in send.links} == {c.span_id for c in writers}
    processes = [s for s in finished if s.name == f"process {topic}"]
    linked = {link.context.trace_id for s in processes for link in s.links}
    assert linked == {c.trace_id for c in writers}  # each handler batch links its requests
