"""The TracSeq event service: stores every event once and serves query, publish, live
tail (SSE), replay and stats.

    TRACSEQ_EVENTS_POSTGRES_DSN=... TRACSEQ_EVENTS_KAFKA_BOOTSTRAP=... \\
        python -m examples.event_service.app

Composed from the kit: ``create_service`` (health, metrics, tracing, problem+json, the
API contract, ``Idempotency-Key``), ``running_consumer`` (ingestion that restarts
itself), ``running_relay`` (the outbox of replays and published events), one router per
resource (``routers/``), SQL in ``store.py``, replay jobs in ``replay.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from examples.event_service.consumer import consumer_factory
from examples.event_service.replay import Replays
from examples.event_service.routers import events, replay, stream
from examples.event_service.settings import EventServiceSettings
from fastapi import FastAPI

from tracseq_kit.db import apply_migrations
from tracseq_kit.events import migrate, running_consumer, running_relay
from tracseq_kit.service import Idempotency, create_service, postgres_pool

__all__ = ["EventServiceSettings", "create_app"]

MIGRATIONS = Path(__file__).with_name("migrations")


def create_app(settings: EventServiceSettings | None = None) -> FastAPI:
    """The event service as an ASGI app (consumer, relay and replays run in its lifespan)."""
    settings = settings or EventServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = app.state.resources["postgres"]
        async with pool.acquire() as conn:
            await apply_migrations(conn, MIGRATIONS, namespace="event_service")
            await migrate(conn)
        async with AsyncExitStack() as stack:
            app.state.replays = await stack.enter_async_context(Replays(pool).running())
            if settings.kafka_bootstrap is not None:
                await stack.enter_async_context(running_relay(pool, settings.kafka_bootstrap))
                # Non-critical: while consuming is down the stored events stay queryable,
                # so the service stays ready; /health says "degraded" with the reason.
                await stack.enter_async_context(
                    running_consumer(consumer_factory(pool, settings), health=app.state.health)
                )
            yield

    app = create_service(
        settings,
        resources=[postgres_pool(settings.postgres_dsn, min_size=1, max_size=10)],
        lifespan=lifespan,
        idempotency=Idempotency(retention=settings.idempotency_retention),
        title="TracSeq event service",
    )
    # the fixed paths (/stream, /replay) before /api/events/{event_id}
    for module in (stream, replay, events):
        app.include_router(module.router)
    return app


if __name__ == "__main__":
    from tracseq_kit.service import run_service

    run_service(create_app())
