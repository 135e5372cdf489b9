"""The template service's settings: ``TRACSEQ_TEMPLATE_*`` variables."""

from __future__ import annotations

from pydantic import SecretStr

from tracseq_kit.settings import ServiceSettings


class TemplateServiceSettings(ServiceSettings, env_prefix="TRACSEQ_TEMPLATE_"):
    """``TRACSEQ_TEMPLATE_*`` variables."""

    service_name: str = "template_service"
    port: int = 8083
    postgres_dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/postgres")
    kafka_bootstrap: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    max_sheet_rows: int = 50_000
    idempotency_retention: float = 86_400.0
    """Seconds an ``Idempotency-Key`` is remembered."""
