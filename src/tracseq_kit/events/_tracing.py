"""Producer and consumer spans after the OpenTelemetry semantic conventions for messaging.

Span names are ``send <topic>`` (kind PRODUCER) and ``process <topic>`` (kind CONSUMER).
A message carries the trace context it was created in (the request that published it,
or wrote it to the outbox); a consumer's ``process`` span is a child of that context,
so the handler's work belongs to the publishing request's trace. A span over several
messages (``publish_many``, a relay round, a batch handler) links to each message's
context instead. Without a configured tracer provider every span here is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind

__all__ = ["consumer_span", "producer_span", "span_context_of", "tracer_for"]

# Attribute names of the messaging conventions (tests compare them with the
# opentelemetry-semantic-conventions package, where they are still "incubating").
SYSTEM = "messaging.system"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
DESTINATION = "messaging.destination.name"
PARTITION = "messaging.destination.partition.id"
OFFSET = "messaging.kafka.offset"
MESSAGE_KEY = "messaging.kafka.message.key"
MESSAGE_ID = "messaging.message.id"
CONSUMER_GROUP = "messaging.consumer.group.name"
BATCH_COUNT = "messaging.batch.message_count"


def tracer_for(provider: trace.TracerProvider | None) -> trace.Tracer:
    """The events tracer of ``provider`` (default: the global one, resolved lazily)."""
    return (provider or trace.get_tracer_provider()).get_tracer("tracseq_kit.events")


def _ce_id(headers: Sequence[tuple[str, bytes]]) -> str | None:
    for name, value in headers:
        if name == "ce_id":
            return bytes(value).decode("utf-8", "replace")
    return None


@contextmanager
def producer_span(
    tracer: trace.Tracer,
    topic: str,
    messages: Sequence[Any],
    *,
    links: Sequence[SpanContext] = (),
) -> Iterator[Span]:
    """``send <topic>`` around publishing ``messages`` (KafkaMessage-like: key, headers).

    One message: its id (``ce_id``) and key are attributes. Several: the count, and
    ``links`` to the contexts the messages were created in (a relay round).
    """
    attributes: dict[str, Any] = {
        SYSTEM: "kafka",
        OPERATION_TYPE: "send",
        OPERATION_NAME: "send",
        DESTINATION: topic,
    }
    if len(messages) == 1:
        (message,) = messages
        event_id = _ce_id(message.headers)
        if event_id is not None:
            attributes[MESSAGE_ID] = event_id
        if message.key is not None:
            attributes[MESSAGE_KEY] = bytes(message.key).decode("utf-8", "replace")
    else:
        attributes[BATCH_COUNT] = len(messages)
    with tracer.start_as_current_span(
        f"send {topic}",
        kind=SpanKind.PRODUCER,
        attributes=attributes,
        links=[Link(c) for c in links],
    ) as span:
        yield span


@contextmanager
def consumer_span(
    tracer: trace.Tracer,
    topic: str,
    partition: int,
    records: Sequence[Any],
    *,
    group: str,
    parent: Context | None = None,
    links: Sequence[SpanContext] = (),
) -> Iterator[Span]:
    """``process <topic>`` around handling ``records`` of one partition.

    One record: a child of ``parent`` (the context the message carries), with its
    offset, key and event id. Several (a batch handler): the count and first offset,
    with ``links`` to the messages' contexts.
    """
    attributes: dict[str, Any] = {
        SYSTEM: "kafka",
        OPERATION_TYPE: "process",
        OPERATION_NAME: "process",
        DESTINATION: topic,
        PARTITION: str(partition),
        CONSUMER_GROUP: group,
    }
    if len(records) == 1:
        (record,) = records
        attributes[OFFSET] = record.offset
        if record.key is not None:
            attributes[MESSAGE_KEY] = bytes(record.key).decode("utf-8", "replace")
        event_id = _ce_id(record.headers or ())
        if event_id is not None:
            attributes[MESSAGE_ID] = event_id
    else:
        attributes[BATCH_COUNT] = len(records)
        if records:
            attributes[OFFSET] = records[0].offset
    with tracer.start_as_current_span(
        f"process {topic}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=attributes,
        links=[Link(c) for c in links],
    ) as span:
        yield span


def span_context_of(context: Context) -> SpanContext | None:
    """The (remote) span context held by ``context``, if valid."""
    span_context = trace.get_current_span(context).get_span_context()
    return span_context if span_context.is_valid else None
