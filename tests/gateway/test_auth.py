"""JWT and API-key authentication, including the classic JWT attacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from gateway_support import serve

from tracseq_kit.gateway import AuthConfig, Authenticator, AuthError, hash_api_key

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _pub(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


RSA_PUB = _pub(RSA_KEY)
EC_PUB = _pub(EC_KEY)
SECRET = "s3cret-shared-key-that-is-long-enough-for-hs256"


def _auth(**jwt_over: Any) -> Authenticator:
    cfg: dict[str, Any] = {
        "algorithms": ["HS256", "RS256", "ES256"],
        "keys": [
            {"alg": "HS256", "secret": SECRET},
            {"alg": "RS256", "public_key": RSA_PUB},
            {"alg": "ES256", "public_key": EC_PUB},
        ],
        "issuer": "https://idp.test/",
        "audience": "tracseq",
        "leeway": 5,
    }
    cfg.update(jwt_over)
    return Authenticator(
        AuthConfig.model_validate(
            {
                "jwt": cfg,
                "api_keys": [{"id": "robot", "sha256": hash_api_key("k-123"), "scopes": ["read"]}],
            }
        )
    )


def _claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": "alice",
        "iss": "https://idp.test/",
        "aud": "tracseq",
        "exp": now + 60,
        "scope": "templates:read events:read",
    }
    claims.update(over)
    return claims


def _bearer(token: str) -> dict[bytes, bytes]:
    return {b"authorization": b"Bearer " + token.encode()}


@pytest.mark.anyio
@pytest.mark.parametrize(("key", "alg"), [(SECRET, "HS256"), (RSA_KEY, "RS256"), (EC_KEY, "ES256")])
async def test_valid_tokens_of_each_algorithm(key: Any, alg: str) -> None:
    identity = await _auth().authenticate(_bearer(jwt.encode(_claims(), key, algorithm=alg)))
    assert identity.subject == "alice"
    assert identity.method == "jwt"
    assert identity.scopes == ("templates:read", "events:read")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


@pytest.mark.anyio
async def test_alg_none_is_rejected() -> None:
    for alg in ("none", "None", "NONE"):
        token = _unsigned({"alg": alg, "typ": "JWT"}, _claims()) + "."
        with pytest.raises(AuthError, match="not allowed"):
            await _auth().authenticate(_bearer(token))


@pytest.mark.anyio
async def test_key_confusion_hs256_signed_with_rsa_public_key_is_rejected() -> None:
    # The attacker signs with HMAC using the public key they know as the secret.
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT"}, _claims())
    sig = hmac.new(RSA_PUB.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(sig)}"
    with pytest.raises(AuthError):
        await _auth().authenticate(_bearer(token))
    # even when only RS256 keys exist but HS256 were (wrongly) allowed
    only_rsa = _auth(algorithms=["RS256", "HS256"], keys=[{"alg": "RS256", "public_key": RSA_PUB}])
    with pytest.raises(AuthError, match="no key matches"):
        await only_rsa.authenticate(_bearer(token))


@pytest.mark.anyio
async def test_algorithm_outside_the_allowlist_is_rejected() -> None:
    auth = _auth(algorithms=["RS256"], keys=[{"alg": "RS256", "public_key": RSA_PUB}])
    with pytest.raises(AuthError, match="'HS256' is not allowed"):
        await auth.authenticate(_bearer(jwt.encode(_claims(), SECRET, algorithm="HS256")))


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"iss": "https://evil.test/"}, "issuer"),
        ({"aud": "other"}, "[Aa]udience"),
        ({"sub": None}, "sub"),
    ],
)
async def test_bad_claims_are_rejected(over: dict[str, Any], message: str) -> None:
    claims = {k: v for k, v in _claims(**over).items() if v is not None}
    with pytest.raises(AuthError, match=message):
        await _auth().authenticate(_bearer(jwt.encode(claims, RSA_KEY, algorithm="RS256")))


@pytest.mark.anyio
async def test_small_clock_skew_is_tolerated() -> None:
    token = jwt.encode(_claims(exp=int(time.time()) - 2), RSA_KEY, algorithm="RS256")
    assert (await _auth().authenticate(_bearer(token))).subject == "alice"


@pytest.mark.anyio
async def test_tampered_signature_is_rejected() -> None:
    token = jwt.encode(_claims(), RSA_KEY, algorithm="RS256")
    head, _body, sig = token.split(".")
    forged_body = _b64(json.dumps(_claims(sub="admin")).encode())
    with pytest.raises(AuthError, match="invalid token"):
        await _auth().authenticate(_bearer(f"{head}.{forged_body}.{sig}"))


@pytest.mark.anyio
async def test_api_keys_are_checked_against_hashes() -> None:
    auth = _auth()
    identity = await auth.authenticate({b"x-api-key": b"k-123"})
    assert (identity.subject, identity.method, identity.scopes) == ("robot", "api_key", ("read",))
    with pytest.raises(AuthError, match="unknown API key"):
        await auth.authenticate({b"x-api-key": b"k-124"})
    with pytest.raises(AuthError, match="authentication required"):
        await auth.authenticate({})
    with pytest.raises(AuthError, match="Bearer"):
        await auth.authenticate({b"authorization": b"Basic abc"})


@pytest.mark.anyio
async def test_jwks_url_keys_are_fetched_and_cached() -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
    jwk.update(kid="k1", alg="RS256", use="sig")
    hits = 0

    async def jwks_app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal hits
        if scope["type"] != "http":
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            return
        hits += 1
        body = json.dumps({"keys": [jwk]}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async with serve(jwks_app) as base:  # type: ignore[arg-type]
        auth = Authenticator(
            AuthConfig.model_validate(
                {
                    "jwt": {
                        "algorithms": ["RS256"],
                        "jwks_url": f"{base}/jwks.json",
                        "issuer": "https://idp.test/",
                        "audience": "tracseq",
                    }
                }
            )
        )
        token = jwt.encode(_claims(), RSA_KEY, algorithm="RS256", headers={"kid": "k1"})
        for _ in range(3):
            assert (await auth.authenticate(_bearer(token))).subject == "alice"
        assert hits == 1
        unknown = jwt.encode(_claims(), RSA_KEY, algorithm="RS256", headers={"kid": "k2"})
        with pytest.raises(AuthError, match="no key matches"):
            await auth.authenticate(_bearer(unknown))


@pytest.mark.anyio
@pytest.mark.parametrize(
    "over",
    [
        {"sub": "alice\r\nX-Tracseq-Identity-Subject: root"},
        {"scope": ["read", "x\r\nEvil: 1"]},
        {"sub": "\u00e9ve"},
    ],
)
async def test_claims_that_would_inject_headers_are_rejected(over: dict[str, Any]) -> None:
    token = jwt.encode(_claims(**over), RSA_KEY, algorithm="RS256")
    with pytest.raises(AuthError, match="not allowed in headers"):
        await _auth().authenticate(_bearer(token))


@pytest.mark.anyio
@pytest.mark.parametrize(
    "over",
    [
        {"scope": 5},
        {"scope": ["read", 5]},
        {"scope": {"read": True}},
        {"sub": 5},
        {"sub": ["alice"]},
        {"sub": ""},
        {"iss": ["https://idp.test/"]},
    ],
    ids=repr,
)
async def test_claims_of_unexpected_types_are_a_401_not_a_crash(over: dict[str, Any]) -> None:
    cfg = {"issuer": None} if "iss" in over else {}
    # signed as is: PyJWT's encode refuses some of these, a forger's code need not
    payload = json.dumps(_claims(**over)).encode()
    token = jwt.PyJWS().encode(payload, RSA_KEY, algorithm="RS256")
    with pytest.raises(AuthError, match=r"claim|invalid token"):
        await _auth(**cfg).authenticate(_bearer(token))


@pytest.mark.anyio
async def test_a_token_with_a_strange_claim_gets_401_through_the_gateway() -> None:
    from gateway_support import config as gw_config

    from tracseq_kit.gateway import Gateway

    gateway = Gateway(
        gw_config(
            {"t": ["127.0.0.1:1"]},
            [{"prefix": "/", "upstream": "t", "auth": True}],
            auth={
                "jwt": {
                    "algorithms": ["HS256"],
                    "keys": [{"alg": "HS256", "secret": SECRET}],
                    "audience": "tracseq",
                }
            },
        )
    )
    import httpx

    token = jwt.encode(_claims(scope=5), SECRET, algorithm="HS256")
    async with serve(gateway) as base, httpx.AsyncClient(base_url=base) as client:
        r = await client.get("/x", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert "scope" in r.json()["detail"]
    assert r.headers["www-authenticate"].startswith("Bearer")
