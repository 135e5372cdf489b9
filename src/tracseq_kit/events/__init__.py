"""Events: typed CloudEvents on Kafka.

- :class:`CloudEvent` (CloudEvents 1.0, generic over a pydantic payload model) and
  :class:`EventRegistry` (event type → payload models by version, with upcasters);
- the Kafka protocol binding: :func:`to_kafka` / :func:`from_kafka`, binary or
  structured content mode, checked against the official CloudEvents SDK;
- :class:`EventPublisher`: idempotent, bounded, batched publishing on aiokafka;
- :class:`Outbox` / :class:`OutboxRelay`: the transactional outbox on PostgreSQL (order
  per key whatever the writers do), and :class:`Inbox` for consumer-side dedupe on
  ``(source, id)``; :func:`migrate` creates their tables and :func:`running_relay` runs
  a relay for a service's lifetime;
- :class:`EventConsumer`: consumer groups, at-least-once, retry topics, dead letters,
  per-event or per-batch handlers (:class:`EventBatch`); :func:`running_consumer` keeps
  one running for a service's lifetime (restarts with backoff, a health check while down);
- :func:`store_new_rows`: store a batch once per key (COPY + INSERT ... ON CONFLICT);
- :class:`DeadLetters`: list, inspect and re-drive dead-lettered messages;
- contracts: :func:`json_schemas` (and :func:`write_json_schemas` /
  :func:`load_json_schemas`), :func:`check_compatibility`, :func:`asyncapi_document`;
- :class:`InMemoryBroker`: the test double for handlers, no Kafka needed.
"""

from tracseq_kit.events._binding import ContentMode, KafkaMessage, from_kafka, to_kafka
from tracseq_kit.events._cloudevent import CloudEvent
from tracseq_kit.events._consumer import DLT_HEADERS, Delivery, EventBatch, EventConsumer
from tracseq_kit.events._contracts import (
    Incompatibility,
    asyncapi_document,
    check_compatibility,
    json_schemas,
    load_json_schemas,
    write_json_schemas,
)
from tracseq_kit.events._deadletters import REDRIVEN_FROM, DeadLetter, DeadLetters
from tracseq_kit.events._inbox import Inbox
from tracseq_kit.events._memory import InMemoryBroker, MemoryRecord
from tracseq_kit.events._outbox import Outbox, OutboxRelay, migrate, running_relay
from tracseq_kit.events._publisher import EventPublisher, PublishGuard
from tracseq_kit.events._registry import EventRegistry, Upcaster
from tracseq_kit.events._store import store_new_rows
from tracseq_kit.events._supervise import ConsumerSupervisor, running_consumer

__all__ = [
    "DLT_HEADERS",
    "REDRIVEN_FROM",
    "CloudEvent",
    "ConsumerSupervisor",
    "ContentMode",
    "DeadLetter",
    "DeadLetters",
    "Delivery",
    "EventBatch",
    "EventConsumer",
    "EventPublisher",
    "EventRegistry",
    "InMemoryBroker",
    "Inbox",
    "Incompatibility",
    "KafkaMessage",
    "MemoryRecord",
    "Outbox",
    "OutboxRelay",
    "PublishGuard",
    "Upcaster",
    "asyncapi_document",
    "check_compatibility",
    "from_kafka",
    "json_schemas",
    "load_json_schemas",
    "migrate",
    "running_consumer",
    "running_relay",
    "store_new_rows",
    "to_kafka",
    "write_json_schemas",
]
