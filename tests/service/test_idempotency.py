"""The Idempotency-Key support of create_service apps, on the real PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from tracseq_kit.service import (
    Idempotency,
    Idempotent,
    create_service,
    postgres_pool,
    problems,
)
from tracseq_kit.settings import ServiceSettings
from tracseq_kit.testing import PostgresSchema


class Thing(BaseModel):
    id: str
    note: str


class ThingIn(BaseModel):
    note: str


router = APIRouter()
gates: dict[str, threading.Event] = {}
arrived = threading.Event()


@router.post("/things", status_code=201, response_model=Thing, responses=problems(409))
async def create_thing(body: ThingIn, write: Idempotent, response: Response) -> Thing:
    pool = app_state["pool"]
    async with pool.acquire() as conn, conn.transaction():
        await write.begin(conn)
        gate = gates.get(body.note)
        if gate is not None and not gate.is_set():  # hold the key while a twin arrives
            arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, gate.wait, 10)
        if body.note == "fail":
            raise RuntimeError("the write failed")
        thing = Thing(id=f"t-{uuid.uuid4().hex[:8]}", note=body.note)
        await conn.execute("INSERT INTO things VALUES ($1, $2)", thing.id, thing.note)
        response.headers["Location"] = f"/things/{thing.id}"
        await write.remember(conn, thing, headers=dict(response.headers))
    return thing


app_state: dict[str, Any] = {}


def _scope(request: Any) -> str:
    return str(request.headers.get("x-client", ""))


@pytest.fixture
def client(postgres_schema: PostgresSchema, live_server: Any) -> Iterator[httpx.Client]:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        pool = app.state.resources["postgres"]
        await pool.execute("CREATE TABLE IF NOT EXISTS things (id text PRIMARY KEY, note text)")
        app_state["pool"] = pool
        yield

    app = create_service(
        ServiceSettings(service_name="things"),
        resources=[postgres_pool(SecretStr(postgres_schema.dsn), min_size=1, max_size=4)],
        lifespan=lifespan,
        idempotency=Idempotency(retention=60, scope=_scope),
        configure_logs=False,
    )
    app.include_router(router)
    server = live_server(app)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        c.dsn = postgres_schema.dsn  # type: ignore[attr-defined]
        yield c


def _count(client: httpx.Client, sql: str) -> int:
    async def run() -> int:
        conn = await asyncpg.connect(client.dsn)  # type: ignore[attr-defined]
        try:
            return int(await conn.fetchval(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


def _key() -> dict[str, str]:
    return {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}


def test_a_repeated_key_replays_the_first_response_with_one_effect(
    client: httpx.Client,
) -> None:
    key = _key()
    first = client.post("/things", json={"note": "a"}, headers=key)
    again = client.post("/things", json={"note": "a"}, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _count(client, "SELECT count(*) FROM things WHERE note = 'a'") == 1


def test_the_same_key_for_another_request_is_422(client: httpx.Client) -> None:
    key = _key()
    assert client.post("/things", json={"note": "b"}, headers=key).status_code == 201
    other = client.post("/things", json={"note": "c"}, headers=key)
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert "different request" in other.json()["detail"]


def test_the_same_key_while_the_first_runs_is_409_with_retry_after(
    client: httpx.Client,
) -> None:
    key = _key()
    gate = gates["slow"] = threading.Event()
    arrived.clear()
    results: list[httpx.Response] = []
    first = threading.Thread(
        target=lambda: results.append(client.post("/things", json={"note": "slow"}, headers=key))
    )
    first.start()
    try:
        assert arrived.wait(10)  # the first request holds the key now
        twin = client.post("/things", json={"note": "slow"}, headers=key)
        assert twin.status_code == 409
        assert twin.headers["retry-after"] == "1"
        assert twin.headers["content-type"] == "application/problem+json"
    finally:
        gate.set()
        first.join(30)
        gates.pop("slow")
    assert results[0].status_code == 201
    replay = client.post("/things", json={"note": "slow"}, headers=key)
    assert replay.status_code == 201 and replay.json() == results[0].json()


def test_a_failed_write_remembers_nothing(client: httpx.Client) -> None:
    key = _key()
    assert client.post("/things", json={"note": "fail"}, headers=key).status_code == 500
    assert client.post("/things", json={"note": "fail"}, headers=key).status_code == 500
    assert _count(client, "SELECT count(*) FROM tracseq_idempotency") >= 0
    fresh = _key()
    assert client.post("/things", json={"note": "d"}, headers=fresh).status_code == 201


def test_without_a_key_every_request_has_its_effect(client: httpx.Client) -> None:
    for _ in range(2):
        assert client.post("/things", json={"note": "e"}).status_code == 201
    assert _count(client, "SELECT count(*) FROM things WHERE note = 'e'") == 2


def test_keys_are_per_client(client: httpx.Client) -> None:
    key = _key()
    a = client.post("/things", json={"note": "f"}, headers={**key, "x-client": "alice"})
    b = client.post("/things", json={"note": "f"}, headers={**key, "x-client": "bob"})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


@pytest.mark.parametrize("bad", [b"x" * 256, b"bad key", "\u00e9".encode(), b'""'])
def test_malformed_keys_are_400(client: httpx.Client, bad: bytes) -> None:
    resp = client.post("/things", json={"note": "g"}, headers={b"Idempotency-Key": bad})
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/problem+json"


def test_a_structured_string_key_is_the_same_key(client: httpx.Client) -> None:
    raw = f"k-{uuid.uuid4().hex}"
    first = client.post("/things", json={"note": "h"}, headers={"Idempotency-Key": raw})
    quoted = client.post("/things", json={"note": "h"}, headers={"Idempotency-Key": f'"{raw}"'})
    assert quoted.json() == first.json()


def test_expired_keys_are_purged_and_forgotten(client: httpx.Client) -> None:
    key = _key()
    first = client.post("/things", json={"note": "i"}, headers=key)

    async def expire_and_purge() -> int:
        conn = await asyncpg.connect(client.dsn)  # type: ignore[attr-defined]
        try:
            await conn.execute("UPDATE tracseq_idempotency SET expires_at = now() - interval '1s'")
            return await Idempotency().purge(conn)
        finally:
            await conn.close()

    assert asyncio.run(expire_and_purge()) >= 1
    again = client.post("/things", json={"note": "i"}, headers=key)
    assert again.status_code == 201 and again.json()["id"] != first.json()["id"]


_TEXT = st.characters(codec="utf-8", exclude_characters="\x00")  # NUL: refused at the door


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    first=st.text(_TEXT, min_size=1, max_size=20), second=st.text(_TEXT, min_size=1, max_size=20)
)
def test_one_key_one_request(client: httpx.Client, first: str, second: str) -> None:
    """Whatever the two bodies, a key gives the first response or a 422, never two effects."""
    key = _key()
    a = client.post("/things", json={"note": first}, headers=key)
    b = client.post("/things", json={"note": second}, headers=key)
    assert a.status_code == 201
    if first == second:
        assert (b.status_code, b.json()) == (201, a.json())
    else:
        assert b.status_code == 422


def test_a_required_key_is_400_when_missing() -> None:
    from starlette.exceptions import HTTPException

    class _Request:
        headers: dict[str, str] = {}

    with pytest.raises(HTTPException) as info:
        Idempotency(required=True).write(_Request(), b"")  # type: ignore[arg-type]
    assert info.value.status_code == 400
