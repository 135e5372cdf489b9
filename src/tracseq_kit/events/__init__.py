"""Events: typed CloudEvents on Kafka.

- :class:`CloudEvent` (CloudEvents 1.0, generic over a pydantic payload model) and
  :class:`EventRegistry` (event type → payload model);
- the Kafka protocol binding: :func:`to_kafka` / :func:`from_kafka`, binary or
  structured content mode;
- :class:`EventPublisher`: idempotent, bounded, pipelined publishing on aiokafka;
- :class:`Outbox` / :class:`OutboxRelay`: the transactional outbox on PostgreSQL, and
  :class:`Inbox` for consumer-side dedupe; :func:`migrate` creates their tables.
"""

from tracseq_kit.events._binding import ContentMode, KafkaMessage, from_kafka, to_kafka
from tracseq_kit.events._cloudevent import CloudEvent, EventRegistry
from tracseq_kit.events._outbox import Inbox, Outbox, OutboxRelay, migrate
from tracseq_kit.events._publisher import EventPublisher, PublishGuard

__all__ = [
    "CloudEvent",
    "ContentMode",
    "EventPublisher",
    "EventRegistry",
    "Inbox",
    "KafkaMessage",
    "Outbox",
    "OutboxRelay",
    "PublishGuard",
    "from_kafka",
    "migrate",
    "to_kafka",
]
