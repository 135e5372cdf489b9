"""The auth service's tokens as a verifier sees them: EdDSA through the JWKS only, no
algorithm confusion, no tampering, and key rotation without downtime."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest
from auth_support import (
    AUDIENCE,
    ISSUER,
    KEK,
    Auth,
    b64,
    fresh_schema,
    outbox,
    run,
    serve_auth,
    unb64,
    verify_with_jwks,
)
from auth_support import settings as auth_settings
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from examples.auth_service.housekeeping import clean_up
from examples.auth_service.keys import KeyRing
from examples.auth_service.tokens import InvalidTokenError, verify
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def auth(postgres_dsn: str) -> Iterator[Auth]:
    with fresh_schema(postgres_dsn) as dsn, serve_auth(dsn) as running:
        yield running


@pytest.fixture(scope="module")
def signed(auth: Auth) -> str:
    return auth.robot_token(scope="templates:read")


def service_verify(auth: Auth, token: str) -> Any:
    """The service's own verifier with the published keys."""
    keys = {k.key_id: k for k in auth.jwks().keys if k.key_id}
    return verify(token, keys, issuer=ISSUER, audience=AUDIENCE, now=auth.clock())


def me(auth: Auth, token: str) -> Any:
    return auth.http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})


def forged(header: dict[str, Any], claims: dict[str, Any], sign: Any) -> str:
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return head + "." + b64(sign(head.encode()))


def test_a_token_verifies_against_the_jwks(auth: Auth, signed: str) -> None:
    claims = verify_with_jwks(signed, auth.jwks())
    assert claims["scope"] == "templates:read"
    header = jwt.get_unverified_header(signed)
    assert header["alg"] == "EdDSA" and header["typ"] == "at+jwt"
    assert header["kid"] in {k.key_id for k in auth.jwks().keys}
    principal = service_verify(auth, signed)
    assert principal.subject == "dev-robot" and principal.scopes == ("templates:read",)


def test_algorithm_confusion_and_foreign_keys_fail(auth: Auth, signed: str) -> None:
    header = jwt.get_unverified_header(signed)
    claims = jwt.decode(signed, options={"verify_signature": False})
    kid = header["kid"]
    jwk = next(k for k in auth.jwks().keys if k.key_id == kid)
    public_pem = jwk.key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    published = auth.http.get("/.well-known/jwks.json").json()["keys"]
    raw_public = unb64(next(k["x"] for k in published if k["kid"] == kid))
    stranger = Ed25519PrivateKey.generate()
    attacks = {
        "alg none": forged({"alg": "none", "kid": kid}, claims, lambda _: b""),
        "HS256 with the PEM public key": forged(
            {"alg": "HS256", "kid": kid},
            claims,
            lambda m: hmac.new(public_pem, m, hashlib.sha256).digest(),
        ),
        "HS256 with the raw public key": jwt.encode(
            claims, raw_public, algorithm="HS256", headers={"kid": kid}
        ),
        "another key, same kid": jwt.encode(
            claims, stranger, algorithm="EdDSA", headers={"kid": kid}
        ),
        "another key, its own kid": jwt.encode(
            claims, stranger, algorithm="EdDSA", headers={"kid": "mine"}
        ),
        "no kid": jwt.encode(claims, stranger, algorithm="EdDSA"),
    }
    for name, token in attacks.items():
        with pytest.raises(jwt.PyJWTError):
            verify_with_jwks(token, auth.jwks())
        with pytest.raises(InvalidTokenError):
            service_verify(auth, token)
        answer = me(auth, token)
        assert answer.status_code == 401, name
        assert answer.headers["www-authenticate"].startswith('Bearer realm="tracseq"')


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(part=st.sampled_from([1, 2]), data=st.data())
def test_any_change_to_payload_or_signature_fails(
    auth: Auth, signed: str, part: int, data: Any
) -> None:
    segments = signed.split(".")
    raw = bytearray(unb64(segments[part]))
    index = data.draw(st.integers(0, len(raw) - 1), label="byte")
    raw[index] ^= data.draw(st.integers(1, 255), label="xor")
    segments[part] = b64(bytes(raw))
    tampered = ".".join(segments)
    with pytest.raises(jwt.PyJWTError):
        verify_with_jwks(tampered, auth.jwks())
    with pytest.raises(InvalidTokenError):
        service_verify(auth, tampered)


CLAIM_VALUES = st.one_of(
    st.text(max_size=20), st.integers(), st.lists(st.text(max_size=5), max_size=3), st.none()
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    claim=st.sampled_from(["sub", "scope", "exp", "aud", "kind", "client_id"]), value=CLAIM_VALUES
)
def test_a_changed_claim_with_the_old_signature_fails(
    auth: Auth, signed: str, claim: str, value: Any
) -> None:
    head, payload, signature = signed.split(".")
    claims = json.loads(unb64(payload))
    if claims[claim] == value:
        return
    claims[claim] = value
    tampered = ".".join([head, b64(json.dumps(claims).encode()), signature])
    with pytest.raises(jwt.PyJWTError):
        verify_with_jwks(tampered, auth.jwks())
    with pytest.raises(InvalidTokenError):
        service_verify(auth, tampered)


async def _kids(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["kid"] for r in await conn.fetch("SELECT kid FROM auth_signing_keys")]
    finally:
        await conn.close()


def test_rotation_keeps_old_tokens_valid_until_they_expire(postgres_dsn: str) -> None:
    with fresh_schema(postgres_dsn) as dsn, serve_auth(dsn) as auth:
        old_token = auth.robot_token()
        old_kid = jwt.get_unverified_header(old_token)["kid"]
        rotated = auth.http.post("/api/auth/keys/rotate", headers=auth.admin())
        assert rotated.status_code == 200, rotated.text
        body = rotated.json()
        new_kid = body["active"]["kid"]
        assert new_kid != old_kid
        (old,) = [k for k in body["published"] if k["kid"] == old_kid]
        until = datetime.fromisoformat(old["published_until"]).timestamp()
        assert until == pytest.approx(auth.clock() + 900 + 60, abs=1)

        new_token = auth.robot_token()
        assert jwt.get_unverified_header(new_token)["kid"] == new_kid
        assert {k.key_id for k in auth.jwks().keys} == {old_kid, new_kid}
        verify_with_jwks(old_token, auth.jwks())
        assert me(auth, old_token).status_code == 200  # no downtime for tokens already out

        auth.clock.advance(901)
        assert me(auth, old_token).status_code == 401  # expired, as it would anyway
        assert old_kid in {k.key_id for k in auth.jwks().keys}  # a grace for clock skew
        auth.clock.advance(60)
        assert {k.key_id for k in auth.jwks().keys} == {new_kid}
        with pytest.raises(jwt.PyJWTError):  # gone: even ignoring expiry it cannot verify
            verify_with_jwks(old_token, auth.jwks(), verify_exp=False)
        answer = me(auth, old_token)
        assert answer.status_code == 401 and "no longer published" in answer.json()["detail"]

        assert old_kid in run(_kids(dsn))  # unpublished; deleted by the next housekeeping
        dropped = run(_clean_up(dsn, auth.clock()))
        assert dropped == [old_kid] and run(_kids(dsn)) == [new_kid]

        again = auth.http.post("/api/auth/keys/rotate", headers=auth.admin())
        assert again.status_code == 200
        keys = auth.http.get("/api/auth/keys", headers=auth.admin()).json()
        assert [k["active"] for k in keys] == [True, False]
        assert [k["kid"] for k in keys][1] == new_kid
        assert not any("d" in k or "private" in json.dumps(k) for k in keys)
        types = [e["type"] for e in outbox(dsn)]
        assert types.count("tracseq.auth.key.rotated") == 2
        assert types.count("tracseq.auth.key.created") == 1


async def _clean_up(dsn: str, now: float) -> list[str]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        ring = KeyRing(auth_settings(dsn).fernet())
        return await clean_up(pool, ring, datetime.fromtimestamp(now, UTC))
    finally:
        await pool.close()


def manage_command(dsn: str, *args: str) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TRACSEQ_AUTH_POSTGRES_DSN": dsn,
        "TRACSEQ_AUTH_KEY_ENCRYPTION_KEY": KEK,
    }
    done = subprocess.run(
        [sys.executable, "-m", "examples.auth_service.manage", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_rotation_command_reaches_the_running_service(postgres_dsn: str) -> None:
    with fresh_schema(postgres_dsn) as dsn, serve_auth(dsn) as auth:
        before = jwt.get_unverified_header(auth.robot_token())["kid"]
        result = json.loads(manage_command(dsn, "rotate-key"))
        assert result["retired"] == before and result["kid"] != before
        after = auth.robot_token()
        assert jwt.get_unverified_header(after)["kid"] == result["kid"]  # no restart
        listed = json.loads(manage_command(dsn, "keys"))
        assert [k["kid"] for k in listed] == [result["kid"], before]
        assert len(manage_command(dsn, "new-encryption-key").strip()) == 44


def test_keys_survive_a_restart_and_need_the_encryption_key(postgres_dsn: str) -> None:
    with fresh_schema(postgres_dsn) as dsn:
        with serve_auth(dsn) as first:
            token = first.robot_token()
        with serve_auth(dsn) as second:
            assert me(second, token).status_code == 200
            assert (
                jwt.get_unverified_header(second.robot_token())["kid"]
                == (jwt.get_unverified_header(token)["kid"])
            )
        rows = run(_rows(dsn))
        assert all(b"PRIVATE KEY" not in bytes(r["private_key"]) for r in rows)


async def _rows(dsn: str) -> list[Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch("SELECT * FROM auth_signing_keys"))
    finally:
        await conn.close()
