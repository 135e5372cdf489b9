"""The TracSeq template service: sample-sheet templates, versions and sheet validation.

    TRACSEQ_TEMPLATE_POSTGRES_DSN=postgresql://... python -m examples.template_service.app

Composed from the kit: ``create_service`` (health, metrics, tracing, problem+json, the
API contract, ``Idempotency-Key``), one router per resource (``routers/``), SQL in
``store.py``. Every state change writes its CloudEvent through the outbox in the same
transaction; with ``TRACSEQ_TEMPLATE_KAFKA_BOOTSTRAP`` set, the outbox relay publishes
them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from examples.template_service.routers import submissions, templates, versions
from examples.template_service.settings import TemplateServiceSettings
from fastapi import FastAPI

from tracseq_kit.db import apply_migrations
from tracseq_kit.events import migrate, running_relay
from tracseq_kit.service import Idempotency, create_service, postgres_pool

__all__ = ["TemplateServiceSettings", "create_app"]

MIGRATIONS = Path(__file__).with_name("migrations")


def create_app(settings: TemplateServiceSettings | None = None) -> FastAPI:
    """The template service as an ASGI app (resources open in its lifespan)."""
    settings = settings or TemplateServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = app.state.resources["postgres"]
        async with pool.acquire() as conn:
            await apply_migrations(conn, MIGRATIONS, namespace="template_service")
            await migrate(conn)
        if settings.kafka_bootstrap is None:
            yield
            return
        async with running_relay(pool, settings.kafka_bootstrap):
            yield

    app = create_service(
        settings,
        resources=[postgres_pool(settings.postgres_dsn, min_size=1, max_size=10)],
        lifespan=lifespan,
        idempotency=Idempotency(retention=settings.idempotency_retention),
        title="TracSeq template service",
    )
    for module in (templates, versions, submissions):
        app.include_router(module.router)
    return app


if __name__ == "__main__":
    from tracseq_kit.service import run_service

    run_service(create_app())
