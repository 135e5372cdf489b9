"""Lifespan resources against the real PostgreSQL and Redis servers, health wiring, CORS."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import Request
from opentelemetry.sdk.trace import TracerProvider

from tracseq_kit import ConfigurationError, DependencyUnavailableError, MissingDependencyError
from tracseq_kit.health import HealthRegistry
from tracseq_kit.service import (
    HealthProvider,
    Resource,
    create_service,
    kafka_producer,
    postgres_pool,
    redis_client,
)
from tracseq_kit.settings import ServiceSettings


def _service(resources: list[Resource], **settings: Any) -> Any:
    # ttl=0: every readiness request re-runs the checks, so changes show at once.
    return create_service(
        ServiceSettings(service_name="res", **settings),
        resources=resources,
        health=HealthRegistry("res", ttl=0, failure_ttl=0),
        tracer_provider=TracerProvider(),
        configure_logs=False,
    )


def test_postgres_and_redis_are_opened_checked_and_closed(
    live_server: Any, postgres_dsn: str, redis_url: str
) -> None:
    app = _service([postgres_pool(postgres_dsn, min_size=1, max_size=2), redis_client(redis_url)])

    @app.get("/db")
    async def db() -> dict[str, Any]:
        pool = app.state.resources["postgres"]
        redis = app.state.resources["redis"]
        return {"pg": await pool.fetchval("SELECT 41 + 1"), "redis": await redis.ping()}

    server = live_server(app)
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/db").json() == {"pg": 42, "redis": True}
        for path in ("/livez", "/startupz", "/readyz", "/health"):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
        checks = client.get("/health").json()["checks"]
        assert {name: c["status"] for name, c in checks.items()} == {
            "postgres": "healthy",
            "redis": "healthy",
        }
    pool = app.state.resources["postgres"]
    server.stop()
    assert pool._closed
    assert len(app.state.resources) == 0


def test_readiness_fails_when_a_dependency_check_fails(live_server: Any) -> None:
    healthy = True

    @asynccontextmanager
    async def open_() -> AsyncIterator[str]:
        yield "thing"

    async def check(_: str) -> None:
        if not healthy:
            raise ConnectionError("down")

    server = live_server(_service([Resource("thing", open_, check)]))
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    healthy = False
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 503
    assert httpx.get(f"{server.url}/livez").status_code == 200


@pytest.mark.anyio
async def test_a_resource_that_fails_to_open_closes_the_opened_ones() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def first() -> AsyncIterator[None]:
        events.append("open first")
        try:
            yield
        finally:
            events.append("close first")

    @asynccontextmanager
    async def broken() -> AsyncIterator[None]:
        raise OSError("connection refused")
        yield

    app = _service([Resource("first", first), Resource("broken", broken)])
    with pytest.raises(DependencyUnavailableError, match=r"'broken'.*connection refused"):
        async with app.router.lifespan_context(app):
            pass
    assert events == ["open first", "close first"]


@pytest.mark.anyio
async def test_unreachable_redis_is_reported_by_name() -> None:
    app = _service([redis_client("redis://127.0.0.1:1/0", socket_connect_timeout=1)])
    with pytest.raises(DependencyUnavailableError, match="'redis'"):
        async with app.router.lifespan_context(app):
            pass


def test_duplicate_resource_names_are_refused() -> None:
    @asynccontextmanager
    async def open_() -> AsyncIterator[None]:
        yield

    with pytest.raises(ConfigurationError, match="unique"):
        _service([Resource("a", open_), Resource("a", open_)])


@pytest.mark.parametrize(
    ("factory", "module", "extra"),
    [
        (lambda: postgres_pool("postgresql://x"), "asyncpg", "postgres"),
        (lambda: redis_client("redis://x"), "redis", "redis"),
        (lambda: kafka_producer("x:9092"), "aiokafka", "kafka"),
    ],
)
def test_missing_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, factory: Any, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingDependencyError, match=rf"tracseq-kit\[{extra}\]"):
        factory()


def test_custom_health_registry_is_wired(live_server: Any) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.checks: list[str] = []
            self.started = False

        def add_check(self, name: str, check: Any) -> None:
            self.checks.append(name)

        def mark_started(self) -> None:
            self.started = True

        def asgi_app(self) -> Any:
            async def serve(scope: Any, receive: Any, send: Any) -> None:
                body = scope["path"].encode()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": body})

            return serve

    @asynccontextmanager
    async def open_() -> AsyncIterator[None]:
        yield

    async def check(_: None) -> None:
        return None

    recorder = Recorder()
    assert isinstance(recorder, HealthProvider)
    app = create_service(
        ServiceSettings(),
        resources=[Resource("db", open_, check), Resource("nocheck", open_)],
        health=recorder,
        tracer_provider=TracerProvider(),
        configure_logs=False,
    )
    server = live_server(app)
    assert recorder.started and recorder.checks == ["db"]
    assert httpx.get(f"{server.url}/startupz").text == "/startupz"


def test_cors_per_settings(live_server: Any) -> None:
    app = _service([], cors_origins="https://lims.example", cors_allow_credentials=True)

    @app.get("/x")
    async def x() -> dict[str, int]:
        return {"x": 1}

    server = live_server(app)
    preflight = httpx.options(
        f"{server.url}/x",
        headers={"Origin": "https://lims.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://lims.example"
    assert preflight.headers["access-control-allow-credentials"] == "true"
    other = httpx.get(f"{server.url}/x", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    same = httpx.get(f"{server.url}/x", headers={"Origin": "https://lims.example"})
    assert "x-request-id" in same.headers["access-control-expose-headers"].lower()


def test_a_value_postgres_refuses_is_a_400_not_a_500(live_server: Any, postgres_dsn: str) -> None:
    app = _service([postgres_pool(postgres_dsn, min_size=1, max_size=2)])

    @app.get("/echo-int")
    async def echo_int(n: int, request: Request) -> Any:  # n unbounded on purpose
        pool = request.app.state.resources["postgres"]
        return await pool.fetchval("SELECT $1::int4", n)

    server = live_server(app)
    assert httpx.get(f"{server.url}/echo-int", params={"n": 5}).json() == 5
    r = httpx.get(f"{server.url}/echo-int", params={"n": 2**40})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert "not acceptable" in r.json()["detail"]
