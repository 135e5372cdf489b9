"""The auth service's admin API (users, robot clients), its events, the development
bootstrap, its settings and its user codes."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from auth_support import (
    CHEAP,
    ISSUER,
    KEK,
    Auth,
    Clock,
    cheap_passwords,
    fresh_schema,
    new_name,
    outbox,
    run,
    serve_auth,
    settings,
)
from examples.auth_service import devices
from examples.auth_service.app import AuthServiceSettings, migrate_database
from examples.auth_service.bootstrap import ensure_dev_identities
from examples.auth_service.credentials import (
    USER_CODE_ALPHABET,
    format_user_code,
    new_user_code,
    normalize_user_code,
)
from examples.auth_service.grants import TokenContext
from examples.auth_service.keys import KeyRing
from hypothesis import given
from hypothesis import strategies as st

from tracseq_kit import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery"


@pytest.fixture
def auth(postgres_dsn: str) -> Iterator[Auth]:
    with fresh_schema(postgres_dsn) as dsn, serve_auth(dsn) as running:
        yield running


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


ADMIN_CALLS = [
    ("GET", "/api/auth/users", None),
    ("POST", "/api/auth/users", {"username": "x", "password": PASSWORD}),
    ("GET", "/api/auth/users/dev", None),
    ("PATCH", "/api/auth/users/dev", {"disabled": True}),
    ("GET", "/api/auth/clients", None),
    ("POST", "/api/auth/clients", {"client_id": "x"}),
    ("PATCH", "/api/auth/clients/dev-robot", {"disabled": True}),
    ("POST", "/api/auth/clients/dev-robot/secret", None),
    ("GET", "/api/auth/keys", None),
    ("POST", "/api/auth/keys/rotate", None),
]


def test_admin_api_is_401_without_a_token_and_403_without_admin(auth: Auth) -> None:
    reader = auth.dev.reader
    read_only = auth.token(reader.client_id, reader.client_secret).json()["access_token"]
    for method, path, body in ADMIN_CALLS:
        anonymous = auth.http.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["content-type"] == "application/problem+json"
        assert anonymous.headers["www-authenticate"] == 'Bearer realm="tracseq"'
        garbage = auth.http.request(method, path, json=body, headers=bearer("not.a.token"))
        assert garbage.status_code == 401
        assert 'error="invalid_token"' in garbage.headers["www-authenticate"]
        forbidden = auth.http.request(method, path, json=body, headers=bearer(read_only))
        assert forbidden.status_code == 403, (method, path)
        assert 'error="insufficient_scope"' in forbidden.headers["www-authenticate"]
        assert forbidden.json()["detail"] == "this needs the 'admin' scope"
    # nothing above changed anything
    assert auth.http.get("/api/auth/users/dev", headers=auth.admin()).json()["disabled"] is False
    assert [e["type"] for e in outbox(auth.dsn)].count("tracseq.auth.user.disabled") == 0


def test_me_needs_a_token(auth: Auth) -> None:
    assert auth.http.get("/api/auth/me").status_code == 401
    login = auth.device_login("events:read")
    me = auth.http.get("/api/auth/me", headers=bearer(login["access_token"])).json()
    assert me["subject"] == "dev" and me["kind"] == "user" and me["scopes"] == ["events:read"]
    assert me["client_id"] == "tracseq-cli"


def test_users_are_managed_with_events_and_never_show_a_hash(auth: Auth) -> None:
    admin = auth.admin()
    name = new_name("ana")
    created = auth.http.post(
        "/api/auth/users",
        json={"username": name, "password": PASSWORD, "scopes": ["events:read", "templates:read"]},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/api/auth/users/{name}"
    user = created.json()
    assert user["scopes"] == ["templates:read", "events:read"]  # catalogue order
    assert user["created_by"] == "dev-robot" and user["disabled"] is False
    duplicate = auth.http.post(
        "/api/auth/users", json={"username": name, "password": PASSWORD}, headers=admin
    )
    assert duplicate.status_code == 409
    assert auth.http.get(f"/api/auth/users/{name}", headers=admin).json() == user
    assert auth.http.get("/api/auth/users/nobody", headers=admin).status_code == 404
    short = auth.http.post(
        "/api/auth/users", json={"username": "bo", "password": "short"}, headers=admin
    )
    assert short.status_code == 422
    unknown_scope = auth.http.post(
        "/api/auth/users",
        json={"username": "bo", "password": PASSWORD, "scopes": ["root"]},
        headers=admin,
    )
    assert unknown_scope.status_code == 422

    auth.clock.advance(1)
    patched = auth.http.patch(
        f"/api/auth/users/{name}",
        json={"scopes": ["events:read"], "disabled": True, "password": "another long password"},
        headers=admin,
    ).json()
    assert patched["scopes"] == ["events:read"] and patched["disabled"] is True
    assert patched["password_changed_at"] > user["password_changed_at"]
    unchanged = auth.http.patch(f"/api/auth/users/{name}", json={}, headers=admin)
    assert unchanged.json() == patched
    assert (
        auth.http.patch(
            f"/api/auth/users/{name}", json={"disabled": None}, headers=admin
        ).status_code
        == 422
    )

    page = auth.http.get("/api/auth/users", params={"limit": 1}, headers=admin).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    rest = auth.http.get(
        "/api/auth/users", params={"cursor": page["next_cursor"]}, headers=admin
    ).json()
    assert {u["username"] for u in page["items"] + rest["items"]} == {"dev", name}

    events = [e for e in outbox(auth.dsn) if e["subject"] == f"user/{name}"]
    assert [e["type"] for e in events] == [
        "tracseq.auth.user.created",
        "tracseq.auth.user.scopes_changed",
        "tracseq.auth.user.disabled",
        "tracseq.auth.user.password_reset",
    ]
    assert all(e["actor"] == "dev-robot" for e in events)
    everything = json.dumps(page) + json.dumps(rest) + "".join(e["raw"] for e in outbox(auth.dsn))
    for secret in (PASSWORD, "another long password", "$argon2", "password_hash"):
        assert secret not in everything


def test_robot_clients_get_their_secret_once(auth: Auth) -> None:
    admin = auth.admin()
    name = new_name("pipeline")
    created = auth.http.post(
        "/api/auth/clients",
        json={"client_id": name, "description": "nightly QC", "scopes": ["samples:read"]},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    secret = created.json()["client_secret"]
    assert secret.startswith("tsq_cs_") and len(secret) > 40
    token = auth.token(name, secret)
    assert token.status_code == 200 and token.json()["scope"] == "samples:read"
    shown = auth.http.get(f"/api/auth/clients/{name}", headers=admin).json()
    assert "client_secret" not in shown and shown["description"] == "nightly QC"
    listing = auth.http.get("/api/auth/clients", headers=admin).text
    assert secret not in listing and "digest" not in listing

    rotated = auth.http.post(f"/api/auth/clients/{name}/secret", headers=admin)
    assert rotated.status_code == 200
    new_secret = rotated.json()["client_secret"]
    assert new_secret != secret
    assert auth.token(name, secret).status_code == 401
    assert auth.token(name, new_secret).status_code == 200

    assert auth.http.patch(
        f"/api/auth/clients/{name}",
        json={"scopes": ["samples:read", "samples:write"]},
        headers=admin,
    ).json()["scopes"] == ["samples:read", "samples:write"]
    assert auth.http.patch(f"/api/auth/clients/{name}", json={"disabled": True}, headers=admin)
    assert auth.token(name, new_secret).status_code == 401
    assert auth.http.patch(f"/api/auth/clients/{name}", json={"disabled": False}, headers=admin)
    assert auth.token(name, new_secret).status_code == 200

    taken = auth.http.post("/api/auth/clients", json={"client_id": name}, headers=admin)
    reserved = auth.http.post("/api/auth/clients", json={"client_id": "tracseq-cli"}, headers=admin)
    assert taken.status_code == reserved.status_code == 409
    assert auth.http.get("/api/auth/clients/nobody", headers=admin).status_code == 404
    assert auth.http.post("/api/auth/clients/nobody/secret", headers=admin).status_code == 404

    events = [e for e in outbox(auth.dsn) if e["subject"] == f"client/{name}"]
    assert [e["type"] for e in events] == [
        "tracseq.auth.client.created",
        "tracseq.auth.client.secret_rotated",
        "tracseq.auth.client.scopes_changed",
        "tracseq.auth.client.disabled",
        "tracseq.auth.client.enabled",
    ]
    raw = "".join(e["raw"] for e in outbox(auth.dsn))
    assert secret not in raw and new_secret not in raw


def test_a_replayed_creation_answers_without_the_secret(auth: Auth) -> None:
    admin = {**auth.admin(), "Idempotency-Key": "create-robot-1"}
    name = new_name("robot")
    first = auth.http.post("/api/auth/clients", json={"client_id": name}, headers=admin)
    again = auth.http.post("/api/auth/clients", json={"client_id": name}, headers=admin)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert first.json()["client_secret"] and again.json()["client_secret"] is None
    assert {k: v for k, v in first.json().items() if k != "client_secret"} == {
        k: v for k, v in again.json().items() if k != "client_secret"
    }

    async def stored() -> str:
        conn = await asyncpg.connect(auth.dsn)
        try:
            rows = await conn.fetch("SELECT body FROM tracseq_idempotency")
            return "".join(bytes(r["body"]).decode() for r in rows)
        finally:
            await conn.close()

    assert first.json()["client_secret"] not in run(stored())


def test_a_password_in_a_retried_write_is_not_kept_as_a_plain_digest(auth: Auth) -> None:
    headers = {**auth.admin(), "Idempotency-Key": "user-1", "Content-Type": "application/json"}
    body = json.dumps({"username": "bea", "password": PASSWORD}).encode()
    first = auth.http.post("/api/auth/users", content=body, headers=headers)
    again = auth.http.post("/api/auth/users", content=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    other = json.dumps({"username": "bea", "password": PASSWORD + "!"}).encode()
    assert auth.http.post("/api/auth/users", content=other, headers=headers).status_code == 422
    # what the kit would store unkeyed: SHA-256 of method, path, query and body
    plain = hashlib.sha256(b"POST\x00/api/auth/users\x00\x00" + body).hexdigest()

    async def stored() -> list[str]:
        conn = await asyncpg.connect(auth.dsn)
        try:
            rows = await conn.fetch("SELECT fingerprint, body FROM tracseq_idempotency")
            return [r["fingerprint"] + bytes(r["body"]).decode() for r in rows]
        finally:
            await conn.close()

    rows = run(stored())
    assert rows and not any(plain in r or PASSWORD in r for r in rows)


def test_bootstrap_is_idempotent_and_hands_out_working_credentials(postgres_dsn: str) -> None:
    with fresh_schema(postgres_dsn) as dsn:
        first = ensure_dev_identities(dsn, issuer=ISSUER + "/", passwords=cheap_passwords())
        assert first.token_endpoint == f"{ISSUER}/oauth/token"
        assert first.user.username == "dev" and len(first.user.password) >= 32
        assert first.reader.scopes == ("templates:read", "events:read")
        with serve_auth(dsn) as auth:  # runs it a second time
            second = auth.dev
            assert second.robot.client_secret != first.robot.client_secret
            assert auth.token("dev-robot", first.robot.client_secret).status_code == 401
            assert auth.token("dev-robot", second.robot.client_secret).status_code == 200
            users = auth.http.get("/api/auth/users", headers=auth.admin()).json()["items"]
            clients = auth.http.get("/api/auth/clients", headers=auth.admin()).json()["items"]
            assert [u["username"] for u in users] == ["dev"]
            assert [c["client_id"] for c in clients] == ["dev-reader", "dev-robot"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TRACSEQ_AUTH_POSTGRES_DSN": dsn}
        printed = subprocess.run(
            [sys.executable, "-m", "examples.auth_service.bootstrap"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )
        assert printed.returncode == 0, printed.stderr
        identities = json.loads(printed.stdout)
        assert identities["robot"]["client_id"] == "dev-robot"
        assert identities["cli_client_id"] == "tracseq-cli"
        assert identities["issuer"] == "http://127.0.0.1:8089"
        raw = "".join(e["raw"] for e in outbox(dsn))
        assert identities["robot"]["client_secret"] not in raw
        assert identities["user"]["password"] not in raw


def test_settings_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRACSEQ_AUTH_KEY_ENCRYPTION_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="TRACSEQ_AUTH_KEY_ENCRYPTION_KEY"):
        AuthServiceSettings()
    with pytest.raises(ConfigurationError, match=r"TRACSEQ_AUTH_KEY_ENCRYPTION_KEY: .*Fernet"):
        AuthServiceSettings(key_encryption_key="not-a-key")
    with pytest.raises(ConfigurationError, match="TRACSEQ_AUTH_ISSUER"):
        AuthServiceSettings(key_encryption_key=KEK, issuer="auth.example")
    with pytest.raises(ConfigurationError, match="TRACSEQ_AUTH_TRUSTED_PROXIES"):
        AuthServiceSettings(key_encryption_key=KEK, trusted_proxies="10.0.0.0/8,nonsense")
    with pytest.raises(ConfigurationError, match="TRACSEQ_AUTH_ACCESS_TOKEN_TTL"):
        AuthServiceSettings(key_encryption_key=KEK, access_token_ttl=5)
    monkeypatch.setenv("TRACSEQ_AUTH_KEY_ENCRYPTION_KEY", f"{KEK}, {KEK}")
    monkeypatch.setenv("TRACSEQ_AUTH_PUBLIC_CLIENTS", "tracseq-cli,lab-notebook")
    loaded = AuthServiceSettings(**CHEAP)
    assert loaded.public_clients == ["tracseq-cli", "lab-notebook"]
    assert loaded.fernet().decrypt(loaded.fernet().encrypt(b"x")) == b"x"


def test_health_and_readiness(auth: Auth) -> None:
    health = auth.http.get("/health").json()
    assert health["service"] == "auth_service" and health["status"] == "healthy"
    assert auth.http.get("/readyz").status_code == 200


# -- user codes ----------------------------------------------------------------------

AMBIGUOUS = set("AEIOUY" + "0O1IL2Z5S8B6")


@given(st.randoms(use_true_random=False))
def test_user_codes_use_an_unambiguous_alphabet(rng: Any) -> None:
    code = new_user_code(rng.choice)
    assert len(code) == 8 and set(code) <= set(USER_CODE_ALPHABET)
    assert not set(code) & AMBIGUOUS
    assert normalize_user_code(code) == code


@given(
    code=st.text(USER_CODE_ALPHABET, min_size=8, max_size=8),
    lower=st.booleans(),
    spaces=st.lists(st.sampled_from([" ", "-"]), max_size=3),
)
def test_a_typed_code_is_read_back_however_it_is_written(
    code: str, lower: bool, spaces: list[str]
) -> None:
    shown = format_user_code(code)
    typed = (shown.lower() if lower else shown) + "".join(spaces)
    assert normalize_user_code(typed) == code
    assert normalize_user_code(" " + typed) == code


@given(st.text(max_size=12))
def test_anything_else_is_not_a_code(text: str) -> None:
    code = normalize_user_code(text)
    assert code is None or (len(code) == 8 and set(code) <= set(USER_CODE_ALPHABET))
    if set(text.upper()) & AMBIGUOUS:
        assert code is None


def test_a_user_code_in_use_is_drawn_again(postgres_dsn: str) -> None:
    with fresh_schema(postgres_dsn) as dsn:
        codes = iter(["CDFGHJKM", "CDFGHJKM", "NPQRTVWX"])

        async def start_two() -> list[str]:
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
            try:
                async with pool.acquire() as conn:
                    await migrate_database(conn)
                ctx = TokenContext(pool, settings(dsn), KeyRing(settings(dsn).fernet()), Clock()())
                started = [
                    await devices.start(ctx, "tracseq-cli", None, new_code=lambda: next(codes))
                    for _ in range(2)
                ]
                return [s.user_code for s in started]
            finally:
                await pool.close()

        assert asyncio.run(start_two()) == ["CDFG-HJKM", "NPQR-TVWX"]
