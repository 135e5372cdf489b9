"""Verified identity in create_service apps: 401 without it, 403 without the scopes,
whatever identity headers a request carries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI

from tracseq_kit import ConfigurationError
from tracseq_kit.identity import AssertionSigner, Identity
from tracseq_kit.service import (
    CurrentIdentity,
    OptionalIdentity,
    create_service,
    problems,
    require_scopes,
)
from tracseq_kit.settings import ServiceSettings
from tracseq_kit.testing import IdentityMinter

pytestmark = pytest.mark.anyio

MINTER = IdentityMinter(audience="things")
Writer = Annotated[Identity, require_scopes("things:write")]


def _app(**settings: object) -> FastAPI:
    app = create_service(
        ServiceSettings(service_name="things", **settings),  # type: ignore[arg-type]
        configure_logs=False,
    )

    @app.post("/things", status_code=201, responses=problems(409))
    async def create_thing(who: Writer) -> dict[str, str]:
        return {"created_by": who.subject}

    @app.get("/me")
    async def me(who: CurrentIdentity) -> dict[str, object]:
        return {"subject": who.subject, "scopes": list(who.scopes)}

    @app.get("/open")
    async def open_to_all(who: OptionalIdentity) -> dict[str, str | None]:
        return {"subject": who.subject if who else None}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = _app(identity_keys=MINTER.keys)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        yield c


def _problem(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = r.json()
    assert body["status"] == status
    return body


async def test_without_an_assertion_a_route_that_needs_one_is_401(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/things")
    _problem(r, 401)
    assert r.headers["www-authenticate"] == 'Bearer realm="tracseq"'
    assert (await client.get("/me")).status_code == 401
    # open routes and the chassis's own endpoints need nobody
    assert (await client.get("/open")).json() == {"subject": None}
    assert (await client.get("/livez")).status_code == 200


async def test_identity_headers_from_anyone_are_not_believed(client: httpx.AsyncClient) -> None:
    forged = {
        "X-Tracseq-Identity-Subject": "admin",
        "X-Tracseq-Identity-Scopes": "admin",
        "X-Tracseq-Identity-Method": "jwt",
    }
    _problem(await client.post("/things", headers=forged), 401)
    assert (await client.get("/open", headers=forged)).json() == {"subject": None}


async def test_a_forged_or_foreign_assertion_is_401_invalid_token(
    client: httpx.AsyncClient,
) -> None:
    stranger = IdentityMinter(audience="things")  # a key the service does not hold
    for headers in (
        stranger.headers("mallory"),
        MINTER.headers("alice", audience="billing"),  # another service's assertion
        {"X-Tracseq-Identity": "e30.e30.e30"},
        {"X-Tracseq-Identity": "x" * 5000},
    ):
        r = await client.post("/things", headers=headers)
        body = _problem(r, 401)
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        assert "mallory" not in str(body)


async def test_an_expired_assertion_is_401(client: httpx.AsyncClient) -> None:
    import time

    old = AssertionSigner(
        MINTER.private_key, key_id=MINTER.key_id, ttl=30, clock=lambda: time.time() - 120
    ).assertion(Identity(subject="alice", method="jwt", scopes=("admin",)), "things")
    body = _problem(await client.post("/things", headers={"X-Tracseq-Identity": old.decode()}), 401)
    assert "expired" in str(body["detail"])


async def test_scopes_are_checked_per_operation(client: httpx.AsyncClient) -> None:
    reader = MINTER.headers("robot", scopes=["things:read"])
    r = await client.post("/things", headers=reader)
    body = _problem(r, 403)
    assert "things:write" in str(body["detail"])
    assert r.headers["www-authenticate"] == (
        'Bearer realm="tracseq", error="insufficient_scope", scope="things:write"'
    )
    assert (await client.get("/me", headers=reader)).json() == {
        "subject": "robot",
        "scopes": ["things:read"],
    }
    writer = MINTER.headers("alice", scopes=["things:write"])
    r = await client.post("/things", headers=writer)
    assert r.status_code == 201 and r.json() == {"created_by": "alice"}
    admin = MINTER.headers("root", scopes=["admin"])
    assert (await client.post("/things", headers=admin)).json() == {"created_by": "root"}


async def test_a_service_without_keys_has_no_identities() -> None:
    app = _app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        r = await c.post("/things", headers=MINTER.headers("alice"))
        body = _problem(r, 401)
        assert "without identity keys" in str(body["detail"])


async def test_anonymous_access_is_an_explicit_development_setting() -> None:
    app = _app(allow_anonymous=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        r = await c.post("/things")
        assert r.status_code == 201 and r.json() == {"created_by": "anonymous"}


async def test_the_contract_names_the_scopes_and_the_401_and_403_answers() -> None:
    doc = _app(identity_keys=MINTER.keys).openapi()
    create = doc["paths"]["/things"]["post"]
    assert create["security"] == [{"tracseq": ["things:write"]}]
    assert {"401", "403", "409"} <= set(create["responses"])
    me = doc["paths"]["/me"]["get"]
    assert me["security"] == [{"tracseq": []}]
    assert "401" in me["responses"] and "403" not in me["responses"]
    assert "security" not in doc["paths"]["/open"]["get"]
    assert "401" not in doc["paths"]["/open"]["get"]["responses"]
    scheme = doc["components"]["securitySchemes"]["tracseq"]
    assert scheme["type"] == "oauth2"
    flow = scheme["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/oauth/token"
    assert set(flow["scopes"]) == {"things:write"}


def test_identity_settings_are_checked_when_read() -> None:
    with pytest.raises(ConfigurationError, match="TRACSEQ_IDENTITY_KEYS"):
        ServiceSettings(identity_keys="not a key")
    with pytest.raises(ConfigurationError, match="not both"):
        ServiceSettings(identity_keys=MINTER.keys, identity_keys_file="/etc/keys.pem")
    with pytest.raises(ValueError, match="not a scope name"):
        require_scopes("two words")
