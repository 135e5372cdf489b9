"""The ASGI endpoints, driven in-process and through uvicorn on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import anyio
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracseq_kit.health import HealthRegistry

pytestmark = pytest.mark.anyio


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")  # type: ignore[arg-type]


def registry_with(*, db_ok: bool = True, cache_ok: bool = True) -> HealthRegistry:
    registry = HealthRegistry("template_service")

    def db() -> float:
        if not db_ok:
            raise ConnectionError("connection refused to 10.0.0.5:5432")
        return 1.5

    registry.add("postgres", db)
    registry.add("cache", lambda: cache_ok, critical=False)
    registry.mark_started()
    return registry


async def test_health_keeps_the_tracseq_shape() -> None:
    async with client_for(registry_with().asgi_app()) as c:
        r = await c.get("/health")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["service"] == "template_service"
    assert body["status"] == "healthy"
    assert body["checks"]["postgres"]["status"] == "healthy"


async def test_health_json_on_request() -> None:
    app = registry_with(cache_ok=False).asgi_app(public_details=True, version="1.2.0")
    async with client_for(app) as c:
        r = await c.get("/health", headers={"accept": "application/health+json"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/health+json"
    doc = r.json()
    assert doc["status"] == "warn"
    assert doc["version"] == "1.2.0"
    pg = doc["checks"]["postgres:status"][0]  # a plain callable measures "status"
    assert pg["componentType"] == "component"
    assert pg["observedValue"] == 1.5
    assert doc["checks"]["cache:status"][0]["status"] == "warn"
    assert pg["time"].endswith("Z")


async def test_failure_is_503_and_details_need_authorisation() -> None:
    app = registry_with(db_ok=False).asgi_app(token="s3cret")
    async with client_for(app) as c:
        hidden = await c.get("/health")
        shown = await c.get("/health", headers={"authorization": "Bearer s3cret"})
        wrong = await c.get("/health", headers={"authorization": "Bearer nope"})
    assert hidden.status_code == shown.status_code == 503
    assert hidden.json()["status"] == "unhealthy"
    assert "10.0.0.5" not in hidden.text and "output" not in hidden.text
    assert "10.0.0.5" not in wrong.text
    assert "connection refused to 10.0.0.5" in shown.json()["checks"]["postgres"]["output"]


@settings(max_examples=50, deadline=None)
@given(st.booleans(), st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=20))
def test_details_never_leak_without_authorisation(public: bool, token: str) -> None:
    async def scenario() -> None:
        app = registry_with(db_ok=False).asgi_app(token="right-token", public_details=public)
        async with client_for(app) as c:
            r = await c.get("/health", headers={"authorization": f"Bearer {token}"})
        leaked = "10.0.0.5" in r.text
        assert leaked == (public or token == "right-token")

    anyio.run(scenario)


async def test_liveness_readiness_startup() -> None:
    registry = HealthRegistry("svc")
    registry.add("db", lambda: False)
    app = registry.asgi_app()
    async with client_for(app) as c:
        assert (await c.get("/startupz")).status_code == 503
        assert (await c.get("/readyz")).status_code == 503
        assert (await c.get("/livez")).status_code == 200
        registry.mark_started()
        assert (await c.get("/startupz")).status_code == 200
        ready = await c.get("/readyz")
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/health+json"
        assert ready.json()["status"] == "fail"
        assert (await c.get("/livez")).json() == {"status": "pass"}


async def test_methods_paths_head_and_mounting() -> None:
    app = registry_with().asgi_app()
    async with client_for(app) as c:
        post = await c.post("/health")
        assert post.status_code == 405
        assert post.headers["allow"] == "GET, HEAD"
        assert post.headers["content-type"] == "application/problem+json"
        assert (await c.get("/nothing")).status_code == 404
        head = await c.head("/health")
        assert head.status_code == 200 and head.content == b""
    from starlette.applications import Starlette
    from starlette.routing import Mount

    outer = Starlette(routes=[Mount("/ops", app=app)])
    async with client_for(outer) as c:
        assert (await c.get("/ops/livez")).status_code == 200


@pytest.fixture
def served() -> Iterator[str]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = uvicorn.Config(
        registry_with().asgi_app(), port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_through_uvicorn_on_loopback(served: str) -> None:
    r = httpx.get(f"{served}/health", headers={"accept": "application/health+json"})
    assert r.status_code == 200
    assert json.loads(r.text)["serviceId"] == "template_service"
    assert httpx.get(f"{served}/livez").status_code == 200
