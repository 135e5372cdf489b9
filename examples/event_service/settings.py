"""The event service's settings: ``TRACSEQ_EVENTS_*`` variables."""

from __future__ import annotations

from pydantic import SecretStr

from tracseq_kit.settings import ServiceSettings


class EventServiceSettings(ServiceSettings, env_prefix="TRACSEQ_EVENTS_"):
    """``TRACSEQ_EVENTS_*`` variables."""

    service_name: str = "event_service"
    port: int = 8095
    postgres_dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/postgres")
    kafka_bootstrap: str | None = None
    topic_pattern: str = r"tracseq\.[a-z0-9_-]+(\.retry\.\d+)?$"
    """Every ``tracseq.*`` topic (and its retry topics; not the dead-letter ones)."""
    group_id: str = "event-service"
    poll_interval: float = 0.5
    idempotency_retention: float = 86_400.0
    """Seconds an ``Idempotency-Key`` is remembered."""
