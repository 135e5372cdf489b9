"""Events: typed CloudEvents on Kafka.

- :class:`CloudEvent` (CloudEvents 1.0, generic over a pydantic payload model) and
  :class:`EventRegistry` (event type → payload model);
- the Kafka protocol binding: :func:`to_kafka` / :func:`from_kafka`, binary or
  structured content mode;
- :class:`EventPublisher`: idempotent, bounded, pipelined publishing on aiokafka;
- :class:`Outbox` / :class:`OutboxRelay`: the transactional outbox on PostgreSQL, and
  :class:`Inbox` for consumer-side dedupe; :func:`migrate` creates their tables and
  :func:`running_relay` runs a relay for a service's lifetime;
- :class:`EventConsumer`: consumer groups, at-least-once, retry topics, dead letters;
- :class:`InMemoryBroker`: the test double for handlers, no Kafka needed.
"""

from tracseq_kit.events._binding import ContentMode, KafkaMessage, from_kafka, to_kafka
from tracseq_kit.events._cloudevent import CloudEvent
from tracseq_kit.events._consumer import DLT_HEADERS, Delivery, EventBatch, EventConsumer
from tracseq_kit.events._inbox import Inbox
from tracseq_kit.events._memory import InMemoryBroker, MemoryRecord
from tracseq_kit.events._outbox import Outbox, OutboxRelay, migrate, running_relay
from tracseq_kit.events._publisher import EventPublisher, PublishGuard
from tracseq_kit.events._registry import EventRegistry

__all__ = [
    "DLT_HEADERS",
    "CloudEvent",
    "ContentMode",
    "Delivery",
    "EventBatch",
    "EventConsumer",
    "EventPublisher",
    "EventRegistry",
    "InMemoryBroker",
    "Inbox",
    "KafkaMessage",
    "MemoryRecord",
    "Outbox",
    "OutboxRelay",
    "PublishGuard",
    "from_kafka",
    "migrate",
    "running_relay",
    "to_kafka",
]
