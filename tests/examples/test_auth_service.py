"""The auth service's OAuth endpoints against the real PostgreSQL, over a socket: client
credentials, the device flow, refresh-token rotation, brute force."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from auth_support import (
    CLI,
    DEVICE_GRANT,
    ISSUER,
    Auth,
    fresh_schema,
    outbox,
    serve_auth,
    verify_with_jwks,
)
from examples.auth_service.scopes import SCOPES


@pytest.fixture
def auth(postgres_dsn: str) -> Iterator[Auth]:
    with fresh_schema(postgres_dsn) as dsn, serve_auth(dsn) as running:
        yield running


def test_discovery_names_every_endpoint_and_the_jwks_is_cacheable(auth: Auth) -> None:
    meta = auth.http.get("/.well-known/openid-configuration").json()
    assert meta["issuer"] == ISSUER
    assert meta["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert meta["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert meta["device_authorization_endpoint"] == f"{ISSUER}/oauth/device_authorization"
    assert meta["grant_types_supported"] == ["client_credentials", DEVICE_GRANT, "refresh_token"]
    assert meta["scopes_supported"] == list(SCOPES)
    assert "client_secret_basic" in meta["token_endpoint_auth_methods_supported"]
    assert meta["access_token_signing_alg_values_supported"] == ["EdDSA"]
    answer = auth.http.get("/.well-known/jwks.json")
    assert answer.headers["cache-control"] == "public, max-age=300"
    (key,) = answer.json()["keys"]
    assert {k: key[k] for k in ("kty", "crv", "alg", "use")} == {
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
    }
    assert key["kid"] and "d" not in key  # never the private part


def test_client_credentials_token_carries_the_contract_claims(auth: Auth) -> None:
    robot = auth.dev.robot
    answer = auth.token(robot.client_id, robot.client_secret)
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["scope"] == " ".join(SCOPES) and "refresh_token" not in body
    claims = verify_with_jwks(body["access_token"], auth.jwks())
    assert set(claims) == {"iss", "aud", "sub", "scope", "iat", "exp", "jti", "client_id", "kind"}
    assert claims["sub"] == claims["client_id"] == "dev-robot" and claims["kind"] == "client"
    assert claims["aud"] == "tracseq" and claims["exp"] - claims["iat"] == 900
    me = auth.http.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.json()["subject"] == "dev-robot" and me.json()["kind"] == "client"


def test_scope_can_be_narrowed_but_never_widened(auth: Auth) -> None:
    reader = auth.dev.reader
    narrowed = auth.token(reader.client_id, reader.client_secret, scope="events:read")
    assert narrowed.json()["scope"] == "events:read"
    claims = verify_with_jwks(narrowed.json()["access_token"], auth.jwks())
    assert claims["scope"] == "events:read"
    for scope in ("templates:write", "events:read admin", "no-such-scope"):
        refused = auth.token(reader.client_id, reader.client_secret, scope=scope)
        assert refused.status_code == 400, scope
        assert refused.json()["error"] == "invalid_scope"
    # the secret in the body works as well as HTTP Basic
    in_body = auth.http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": reader.client_id,
            "client_secret": reader.client_secret,
        },
    )
    assert in_body.json()["scope"] == "templates:read events:read"


def test_unknown_client_wrong_secret_and_disabled_client_get_one_answer(auth: Auth) -> None:
    robot = auth.dev.robot
    unknown = auth.token("nobody", robot.client_secret)
    wrong = auth.token(robot.client_id, robot.client_secret + "x")
    in_body = auth.http.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
    )
    reader = auth.dev.reader
    disabled = auth.http.patch(
        f"/api/auth/clients/{reader.client_id}", json={"disabled": True}, headers=auth.admin()
    )
    assert disabled.status_code == 200
    refused = auth.token(reader.client_id, reader.client_secret)
    answers = [unknown, wrong, in_body, refused]
    assert {a.status_code for a in answers} == {401}
    assert {a.text for a in answers} == {
        '{"error":"invalid_client","error_description":"client authentication failed"}'
    }
    assert {a.headers["www-authenticate"] for a in answers} == {
        'Basic realm="tracseq", charset="UTF-8"'
    }


def test_malformed_token_requests_are_oauth_errors(auth: Auth) -> None:
    robot = auth.dev.robot
    cases = {
        "invalid_request": [
            auth.http.post("/oauth/token", json={"grant_type": "client_credentials"}),
            auth.http.post("/oauth/token", data={}),
            auth.http.post(
                "/oauth/token",
                content="grant_type=client_credentials&grant_type=refresh_token",
                headers={"content-type": "application/x-www-form-urlencoded"},
            ),
            auth.http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials", "client_secret": "x"},
                auth=(robot.client_id, robot.client_secret),
            ),
        ],
        "unsupported_grant_type": [auth.http.post("/oauth/token", data={"grant_type": "password"})],
    }
    for error, answers in cases.items():
        for answer in answers:
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"] == error
            assert answer.headers["cache-control"] == "no-store"


def test_device_flow_from_start_to_tokens(auth: Auth) -> None:
    started = auth.start_device("templates:read templates:write")
    user_code = started["user_code"]
    assert len(user_code) == 9 and user_code[4] == "-"
    assert started["verification_uri"] == f"{ISSUER}/device"
    assert started["verification_uri_complete"] == f"{ISSUER}/device?user_code={user_code}"
    assert started["interval"] == 5 and started["expires_in"] == 600
    device_code = started["device_code"]

    assert auth.poll(device_code).json()["error"] == "authorization_pending"
    too_fast = auth.poll(device_code)
    assert too_fast.json()["error"] == "slow_down"
    auth.clock.advance(6)  # the interval is now 10 s: 6 s is still too early
    assert auth.poll(device_code).json()["error"] == "slow_down"
    auth.clock.advance(16)
    assert auth.poll(device_code).json()["error"] == "authorization_pending"

    page = auth.http.get("/device", params={"user_code": user_code.lower()})
    assert page.status_code == 200 and "templates:read templates:write" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    wrong = auth.device_page(user_code, password="not the password at all")
    assert wrong.status_code == 400 and "username or password is not correct" in wrong.text
    unknown_user = auth.http.post(
        "/device",
        data={
            "user_code": user_code,
            "username": "nobody",
            "password": "x" * 12,
            "action": "approve",
        },
    )
    # same words whichever part was wrong
    assert unknown_user.status_code == 400
    assert "username or password is not correct" in unknown_user.text
    assert auth.device_page(user_code).status_code == 200

    auth.clock.advance(11)
    tokens = auth.poll(device_code)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["scope"] == "templates:read templates:write"
    assert body["refresh_token"].startswith("tsq_rt_")
    claims = verify_with_jwks(body["access_token"], auth.jwks(), leeway=60)
    assert claims["sub"] == "dev" and claims["kind"] == "user" and claims["client_id"] == CLI
    auth.clock.advance(11)
    again = auth.poll(device_code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_device_login_denied(auth: Auth) -> None:
    started = auth.start_device()
    denied = auth.device_page(started["user_code"], action="deny")
    assert denied.status_code == 200 and "denied" in denied.text
    answer = auth.poll(started["device_code"])
    assert answer.status_code == 400 and answer.json()["error"] == "access_denied"


def test_device_code_expires(auth: Auth) -> None:
    started = auth.start_device()
    auth.clock.advance(601)
    answer = auth.poll(started["device_code"])
    assert answer.json()["error"] == "expired_token"
    late = auth.device_page(started["user_code"])
    assert late.status_code == 400 and "not valid or has expired" in late.text


def test_device_start_refuses_unknown_clients_and_scopes(auth: Auth) -> None:
    robot = auth.http.post("/oauth/device_authorization", data={"client_id": "dev-robot"})
    assert robot.status_code == 401 and robot.json()["error"] == "invalid_client"
    scope = auth.http.post("/oauth/device_authorization", data={"client_id": CLI, "scope": "root"})
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    # a robot cannot poll as the CLI with its secret
    started = auth.start_device()
    form = {
        "grant_type": DEVICE_GRANT,
        "device_code": started["device_code"],
        "client_id": CLI,
        "client_secret": "anything",
    }
    assert auth.http.post("/oauth/token", data=form).json()["error"] == "invalid_client"


def test_device_login_asks_only_what_the_person_has(auth: Auth) -> None:
    admin = auth.admin()
    created = auth.http.post(
        "/api/auth/users",
        json={
            "username": "reader",
            "password": "a long enough password",
            "scopes": ["events:read"],
        },
        headers=admin,
    )
    assert created.status_code == 201
    started = auth.start_device("events:read events:write")
    approve = {
        "user_code": started["user_code"],
        "username": "reader",
        "password": "a long enough password",
        "action": "approve",
    }
    assert auth.http.post("/device", data=approve).status_code == 200
    assert auth.poll(started["device_code"]).json()["scope"] == "events:read"


def test_refresh_tokens_rotate_and_a_reused_one_revokes_the_login(auth: Auth) -> None:
    first = auth.device_login()["refresh_token"]
    answer = auth.http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first, "client_id": CLI},
    )
    assert answer.status_code == 200, answer.text
    second = answer.json()["refresh_token"]
    assert second != first
    narrowed = auth.http.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": second,
            "client_id": CLI,
            "scope": "events:read",
        },
    )
    assert narrowed.json()["scope"] == "events:read"
    third = narrowed.json()["refresh_token"]
    # the narrowing was for that access token only: the login keeps its scopes
    wider = auth.http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": third, "client_id": CLI},
    )
    assert wider.json()["scope"] == " ".join(SCOPES)
    fourth = wider.json()["refresh_token"]

    reused = auth.http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": first, "client_id": CLI},
    )
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    assert "already used" in reused.json()["error_description"]
    # the thief's use revoked the whole login: the latest token is dead too
    latest = auth.http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": fourth, "client_id": CLI},
    )
    assert latest.json()["error"] == "invalid_grant"
    events = outbox(auth.dsn)
    reuse = [e for e in events if e["type"] == "tracseq.auth.refresh_token.reused"]
    assert reuse and reuse[0]["data"] == {"username": "dev", "client_id": CLI}
    assert not any(secret in e["raw"] for e in events for secret in (first, second, fourth))


def test_refresh_tokens_expire_and_end_with_the_password(auth: Auth) -> None:
    token = auth.device_login()["refresh_token"]
    auth.clock.advance(30 * 86_400 + 1)
    expired = auth.http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": CLI},
    )
    assert expired.json()["error"] == "invalid_grant"
    token = auth.device_login()["refresh_token"]
    reset = auth.http.patch(
        "/api/auth/users/dev", json={"password": "a brand new password"}, headers=auth.admin()
    )
    assert reset.status_code == 200
    after = auth.http.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": CLI},
    )
    assert after.json()["error"] == "invalid_grant"
    assert auth.device_page(auth.start_device()["user_code"]).status_code == 400


def test_disabled_user_gets_no_token(auth: Auth) -> None:
    started = auth.start_device()
    admin = auth.admin()
    assert auth.http.patch("/api/auth/users/dev", json={"disabled": True}, headers=admin).json()[
        "disabled"
    ]
    refused = auth.device_page(started["user_code"])
    assert refused.status_code == 400 and "username or password is not correct" in refused.text
    # approved before being disabled: the device still gets nothing
    auth.http.patch("/api/auth/users/dev", json={"disabled": False}, headers=admin)
    assert auth.device_page(started["user_code"]).status_code == 200
    auth.http.patch("/api/auth/users/dev", json={"disabled": True}, headers=admin)
    assert auth.poll(started["device_code"]).json()["error"] == "access_denied"


def test_token_endpoint_brute_force_is_429(postgres_dsn: str) -> None:
    overrides = {"auth_failures_per_client": 3, "auth_failures_per_address": 6}
    with fresh_schema(postgres_dsn) as dsn, serve_auth(dsn, **overrides) as auth:
        robot = auth.dev.robot
        for _ in range(3):
            assert auth.token(robot.client_id, "guess").status_code == 401
        limited = auth.token(robot.client_id, robot.client_secret)  # even the right secret
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert 1 <= int(limited.headers["retry-after"]) <= 100
        # another client from the same address still may, until the address is spent
        reader = auth.dev.reader
        assert auth.token(reader.client_id, reader.client_secret).status_code == 200
        for _ in range(3):
            assert auth.token("someone-else", "guess").status_code == 401
        assert auth.token(reader.client_id, reader.client_secret).status_code == 429


def test_device_page_brute_force_is_429(postgres_dsn: str) -> None:
    overrides = {"auth_failures_per_client": 2, "auth_failures_per_address": 4}
    with fresh_schema(postgres_dsn) as dsn, serve_auth(dsn, **overrides) as auth:
        user_code = auth.start_device()["user_code"]
        for _ in range(2):
            assert auth.device_page(user_code, password="wrong password!").status_code == 400
        limited = auth.device_page(user_code)
        assert limited.status_code == 429 and "Too many failed attempts" in limited.text
        assert limited.headers["content-type"].startswith("text/html")
        assert int(limited.headers["retry-after"]) >= 1
        # guessing user codes spends the address
        for code in ("CCCC-CCCC", "DDDD-DDDD"):
            assert auth.http.get("/device", params={"user_code": code}).status_code == 400
        assert auth.http.get("/device", params={"user_code": user_code}).status_code == 429


def test_brute_force_counts_are_shared_through_redis(
    postgres_dsn: str, redis_url: str, redis_prefix: str
) -> None:
    overrides = {
        "auth_failures_per_client": 2,
        "redis_url": redis_url,
        "redis_prefix": redis_prefix,
    }
    with fresh_schema(postgres_dsn) as dsn:
        with serve_auth(dsn, **overrides) as first:
            robot = first.dev.robot
            for _ in range(2):
                assert first.token(robot.client_id, "guess").status_code == 401
        # a second instance (another process, say) knows about those failures
        with serve_auth(dsn, **overrides) as second:
            robot = second.dev.robot
            assert second.token(robot.client_id, robot.client_secret).status_code == 429
