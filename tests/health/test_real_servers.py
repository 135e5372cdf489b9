"""Checks against real PostgreSQL, Redis and a Kafka-protocol broker, passing and failing.

"Failing" uses private embedded servers that the test stops (never the shared ones),
and a black-hole listener that accepts connections and never answers.
"""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import httpx
import pytest

from tracseq_kit.health import HealthRegistry, HttpCheck, KafkaCheck, PostgresCheck, RedisCheck
from tracseq_kit.local import EmbeddedKafka, EmbeddedPostgres, EmbeddedRedis

pytestmark = pytest.mark.anyio

TIMEOUT = 1.0


def client_for(registry: HealthRegistry) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=registry.asgi_app(public_details=True)),
        base_url="http://svc",
    )


async def ready(registry: HealthRegistry) -> tuple[int, dict[str, object], float]:
    async with client_for(registry) as c:
        start = time.monotonic()
        r = await c.get("/readyz")
        elapsed = time.monotonic() - start
        live = await c.get("/livez")
    assert live.status_code == 200
    return r.status_code, r.json(), elapsed


@pytest.fixture
async def registry() -> AsyncIterator[HealthRegistry]:
    reg = HealthRegistry("svc", timeout=TIMEOUT, failure_ttl=0, ttl=0)
    reg.mark_started()
    yield reg
    await reg.aclose()


async def test_all_real_servers_pass(
    registry: HealthRegistry, postgres_dsn: str, redis_url: str, kafka_bootstrap: str
) -> None:
    registry.add("postgres", PostgresCheck(postgres_dsn))
    registry.add("redis", RedisCheck(redis_url))
    registry.add("kafka", KafkaCheck(kafka_bootstrap))
    status, doc, _ = await ready(registry)
    assert status == 200, doc
    checks = doc["checks"]
    assert checks["postgres:responseTime"][0]["observedUnit"] == "ms"  # type: ignore[index]
    assert checks["kafka:brokers"][0]["observedValue"] >= 1  # type: ignore[index]
    # A second run reuses the kept connections.
    assert (await ready(registry))[0] == 200


async def test_postgres_pool_check(registry: HealthRegistry, postgres_dsn: str) -> None:
    import asyncpg

    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=1)
    try:
        registry.add("postgres", PostgresCheck(pool))
        assert (await ready(registry))[0] == 200
    finally:
        await pool.close()


async def test_stopped_postgres_fails_readiness_within_the_timeout(
    registry: HealthRegistry,
) -> None:
    async with EmbeddedPostgres() as pg:
        registry.add("postgres", PostgresCheck(pg.url))
        assert (await ready(registry))[0] == 200
        await anyio.to_thread.run_sync(pg.stop)
        status, doc, elapsed = await ready(registry)
    assert status == 503
    assert elapsed < TIMEOUT + 0.5
    assert doc["checks"]["postgres:responseTime"][0]["status"] == "fail"  # type: ignore[index]


async def test_stopped_redis_fails_readiness_within_the_timeout(
    registry: HealthRegistry,
) -> None:
    async with EmbeddedRedis() as rd:
        registry.add("redis", RedisCheck(rd.url))
        assert (await ready(registry))[0] == 200
        await anyio.to_thread.run_sync(rd.stop)
        status, _, elapsed = await ready(registry)
    assert status == 503
    assert elapsed < TIMEOUT + 0.5


async def test_stopped_kafka_fails_readiness_within_the_timeout(
    registry: HealthRegistry,
) -> None:
    async with EmbeddedKafka() as kafka:
        registry.add("kafka", KafkaCheck(kafka.url, request_timeout_ms=500))
        assert (await ready(registry))[0] == 200
        await anyio.to_thread.run_sync(kafka.stop)
        status, _, elapsed = await ready(registry)
    assert status == 503
    assert elapsed < TIMEOUT + 0.5


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A TCP listener that accepts connections and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    server.settimeout(0.05)
    stop = False

    def accept_loop() -> None:
        while not stop:
            try:
                conn, _ = server.accept()
                accepted.append(conn)
            except OSError:
                continue

    import threading

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop = True
    thread.join(2)
    for conn in accepted:
        conn.close()
    server.close()


async def test_hanging_dependencies_never_hang_the_endpoint(
    registry: HealthRegistry, black_hole: int
) -> None:
    registry.add("redis", RedisCheck(f"redis://127.0.0.1:{black_hole}"))
    registry.add("http", HttpCheck(f"http://127.0.0.1:{black_hole}/readyz"))
    registry.add("postgres", PostgresCheck(f"postgresql://x@127.0.0.1:{black_hole}/db"))
    status, doc, elapsed = await ready(registry)
    assert status == 503
    assert elapsed < TIMEOUT + 0.5
    outputs = [c[0]["output"] for c in doc["checks"].values()]  # type: ignore[union-attr]
    assert outputs == [f"timed out after {TIMEOUT:g}s"] * 3


async def test_http_dependency(registry: HealthRegistry) -> None:
    registry2 = HealthRegistry("upstream")
    registry2.mark_started()
    transport = httpx.ASGITransport(app=registry2.asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://up") as client:
        registry.add("upstream", HttpCheck("http://up/readyz", client=client))
        registry.add("missing", HttpCheck("http://up/nope", client=client), critical=False)
        status, doc, _ = await ready(registry)
    assert status == 200
    assert doc["status"] == "warn"
    assert "404" in doc["checks"]["missing:responseTime"][0]["output"]  # type: ignore[index]
