"""The TracSeq auth service: OAuth 2.0 tokens for robots (client credentials) and people
(device flow, refresh tokens), the JWKS and discovery document, users and robot clients.

    TRACSEQ_AUTH_POSTGRES_DSN=postgresql://... \\
    TRACSEQ_AUTH_KEY_ENCRYPTION_KEY=$(python -m examples.auth_service.manage new-encryption-key) \\
        python -m examples.auth_service.app

Composed from the kit: ``create_service`` (health, metrics, tracing, problem+json, the
API contract, ``Idempotency-Key``), ``tracseq_kit.ratelimit`` against brute force, one
router per resource (``routers/``), SQL in ``store.py``. Every change to users, clients
and keys writes its CloudEvent through the outbox in the same transaction; with
``TRACSEQ_AUTH_KAFKA_BOOTSTRAP`` set, the outbox relay publishes them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from examples.auth_service.credentials import Passwords
from examples.auth_service.deps import idempotency_scope
from examples.auth_service.guard import Guard
from examples.auth_service.housekeeping import running_housekeeping
from examples.auth_service.keys import KeyRing, ensure_signing_key
from examples.auth_service.routers import clients, device, discovery, keys, me, token, users
from examples.auth_service.settings import AuthServiceSettings
from fastapi import FastAPI

from tracseq_kit.db import apply_migrations
from tracseq_kit.events import migrate, running_relay
from tracseq_kit.service import (
    Idempotency,
    Resource,
    create_service,
    postgres_pool,
    redis_client,
)

__all__ = ["MIGRATIONS", "AuthServiceSettings", "create_app", "migrate_database"]

MIGRATIONS = Path(__file__).with_name("migrations")


async def migrate_database(conn: object) -> None:
    """Apply the service's migrations and the kit's outbox tables (idempotent)."""
    await apply_migrations(conn, MIGRATIONS, namespace="auth_service")
    await migrate(conn)


def create_app(
    settings: AuthServiceSettings | None = None, *, clock: Callable[[], float] = time.time
) -> FastAPI:
    """The auth service as an ASGI app (resources open in its lifespan).

    ``clock`` (seconds since the epoch) is the time of tokens, device codes and keys;
    tests pass their own to move time without sleeping. Raises
    :class:`~tracseq_kit.ConfigurationError` naming the variable when the settings come
    from an environment without ``TRACSEQ_AUTH_KEY_ENCRYPTION_KEY``.
    """
    settings = settings or AuthServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = app.state.resources["postgres"]
        async with pool.acquire() as conn:
            await migrate_database(conn)
            async with conn.transaction():
                await ensure_signing_key(conn, app.state.keys, datetime.fromtimestamp(clock(), UTC))
        redis = app.state.resources["redis"] if settings.redis_url else None
        app.state.guard = Guard(
            per_name=settings.auth_failures_per_client,
            per_address=settings.auth_failures_per_address,
            period=settings.auth_failures_period,
            redis=redis,
            redis_prefix=settings.redis_prefix,
            trusted_proxies=settings.networks(),
        )
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(
                running_housekeeping(
                    pool, app.state.keys, clock, interval=settings.housekeeping_interval
                )
            )
            if settings.kafka_bootstrap is not None:
                await stack.enter_async_context(running_relay(pool, settings.kafka_bootstrap))
            yield

    resources: list[Resource] = [postgres_pool(settings.postgres_dsn, min_size=1, max_size=10)]
    if settings.redis_url is not None:
        resources.append(redis_client(settings.redis_url))
    app = create_service(
        settings,
        resources=resources,
        lifespan=lifespan,
        idempotency=Idempotency(retention=settings.idempotency_retention, scope=idempotency_scope),
        title="TracSeq auth service",
    )
    app.state.clock = clock
    app.state.idempotency_pepper = settings.idempotency_pepper()
    app.state.keys = KeyRing(settings.fernet())
    app.state.passwords = Passwords(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )
    for module in (discovery, token, device, me, users, clients, keys):
        app.include_router(module.router)
    return app


if __name__ == "__main__":
    from tracseq_kit.service import run_service

    run_service(create_app())
