"""Ingestion: every ``tracseq.*`` event from Kafka stored once."""

from __future__ import annotations

from typing import Any

import asyncpg
from examples.event_service import store
from examples.event_service.settings import EventServiceSettings

from tracseq_kit.events import CloudEvent, Delivery, EventConsumer

POSTGRES_DOWN: tuple[type[BaseException], ...] = (
    ConnectionError,
    FileNotFoundError,  # the server's Unix socket is gone
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, cannot connect now
    asyncpg.exceptions.TooManyConnectionsError,
)
"""Errors that mean PostgreSQL is unreachable, not that an event is bad."""


def consumer_factory(pool: Any, settings: EventServiceSettings) -> Any:
    """Makes the consumer of every ``tracseq.*`` topic (a fresh one per restart)."""

    async def ingest(event: CloudEvent[Any], delivery: Delivery) -> None:
        origin = dict(delivery.headers).get("tracseq-original-topic")
        await store.store(pool, event, origin.decode() if origin else delivery.topic)

    def new_consumer() -> EventConsumer:
        assert settings.kafka_bootstrap is not None
        return EventConsumer(
            topic_pattern=settings.topic_pattern,
            group_id=settings.group_id,
            handler=ingest,
            bootstrap_servers=settings.kafka_bootstrap,
            # PostgreSQL down is an outage, not a bad event: wait, do not dead-letter.
            pause_on=POSTGRES_DOWN,
        )

    return new_consumer
