"""Scopes at the gateway, keys from a JWKS that rotates, and the identity a service gets.

The upstream is a real ``create_service`` app that verifies the gateway's assertions,
served over a socket; tokens are EdDSA JWTs as the auth service issues them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gateway_support import serve
from pydantic import ValidationError

from tracseq_kit.gateway import Gateway, parse_config
from tracseq_kit.identity import generate_keypair
from tracseq_kit.service import CurrentIdentity, create_service
from tracseq_kit.settings import ServiceSettings

pytestmark = pytest.mark.anyio

ISSUER = "https://auth.test"
GATEWAY_PRIVATE, GATEWAY_PUBLIC = generate_keypair()


class Idp:
    """A stand-in for the auth service: EdDSA keys published as a JWKS that can rotate."""

    def __init__(self) -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {"k1": Ed25519PrivateKey.generate()}
        self.fetches = 0

    def token(self, kid: str = "k1", *, scopes: str = "", ttl: int = 600, **over: Any) -> str:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": "tracseq", "sub": "alice", "iat": now, "exp": now + ttl}
        claims.update(scope=scopes, **over)
        return jwt.encode(claims, self.keys[kid], algorithm="EdDSA", headers={"kid": kid})

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
            out.append({**jwk, "kid": kid, "alg": "EdDSA", "use": "sig"})
        return {"keys": out}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.fetches += 1
        await asyncio.sleep(0.05)  # a fetch takes a moment: concurrent callers overlap
        body = json.dumps(self.jwks()).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _service(audience: str) -> Any:
    settings = ServiceSettings(
        service_name=audience, identity_keys=f"kid=gw-1\n{GATEWAY_PUBLIC}", log_level="ERROR"
    )
    app = create_service(settings, configure_logs=False)

    @app.api_route("/api/{rest:path}", methods=["GET", "POST", "DELETE"])
    async def whoami(who: CurrentIdentity) -> dict[str, Any]:
        return {"subject": who.subject, "scopes": list(who.scopes), "kind": who.kind}

    return app


@pytest.fixture
async def idp() -> AsyncIterator[tuple[Idp, str]]:
    provider = Idp()
    async with serve(provider) as base:  # type: ignore[arg-type]
        yield provider, f"{base}/.well-known/jwks.json"


@pytest.fixture
async def services() -> AsyncIterator[dict[str, str]]:
    async with (
        serve(_service("template_service")) as templates,  # type: ignore[arg-type]
        serve(_service("event_service")) as events,  # type: ignore[arg-type]
    ):
        yield {"templates": templates, "events": events}


def _gateway(jwks_url: str, services: dict[str, str], **jwt_over: Any) -> Gateway:
    return Gateway(
        parse_config(
            {
                "pools": {
                    "templates": {
                        "instances": [services["templates"].removeprefix("http://")],
                        "audience": "template_service",
                    },
                    "events": {
                        "instances": [services["events"].removeprefix("http://")],
                        "audience": "event_service",
                    },
                },
                "routes": [
                    {"prefix": "/api/templates", "upstream": "templates", "scopes": ["t:read"]},
                    {
                        "prefix": "/api/events",
                        "upstream": "events",
                        "scopes": {"read": ["e:read"], "write": ["e:write"]},
                    },
                    {"prefix": "/api/open", "upstream": "templates"},
                ],
                "auth": {
                    "jwt": {
                        "algorithms": ["EdDSA"],
                        "jwks_url": jwks_url,
                        "issuer": ISSUER,
                        "audience": "tracseq",
                        **jwt_over,
                    }
                },
                "identity": {"signing_key": GATEWAY_PRIVATE, "key_id": "gw-1", "ttl": 10},
            }
        )
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _refusal(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == status
    return r.headers["www-authenticate"]


async def test_401_without_a_token_403_without_the_scope(
    idp: tuple[Idp, str], services: dict[str, str]
) -> None:
    provider, url = idp
    async with serve(_gateway(url, services)) as base, httpx.AsyncClient(base_url=base) as c:
        assert _refusal(await c.get("/api/templates"), 401) == 'Bearer realm="tracseq"'
        challenge = _refusal(await c.get("/api/templates", headers=_bearer("x.y.z")), 401)
        assert 'error="invalid_token"' in challenge
        reader = _bearer(provider.token(scopes="t:read e:read"))
        r = await c.get("/api/templates/1", headers=reader)
        assert r.status_code == 200 and r.json()["subject"] == "alice"
        assert (await c.get("/api/events", headers=reader)).status_code == 200
        challenge = _refusal(await c.post("/api/events", headers=reader), 403)
        assert challenge == 'Bearer realm="tracseq", error="insufficient_scope", scope="e:write"'
        assert "e:write" in (await c.post("/api/events", headers=reader)).json()["detail"]
        nobody = _bearer(provider.token(scopes="e:write"))
        _refusal(await c.get("/api/templates", headers=nobody), 403)
        admin = _bearer(provider.token(scopes="admin"))
        for method in ("GET", "POST", "DELETE"):
            assert (await c.request(method, "/api/events/x", headers=admin)).status_code == 200
        # a route without scopes or auth forwards no identity: the service says 401
        _refusal(await c.get("/api/open", headers=admin), 401)


async def test_each_service_gets_an_assertion_for_itself_only(
    idp: tuple[Idp, str], services: dict[str, str]
) -> None:
    provider, url = idp
    token = _bearer(provider.token(scopes="t:read e:read"))
    async with serve(_gateway(url, services)) as base, httpx.AsyncClient(base_url=base) as c:
        assert (await c.get("/api/templates", headers=token)).json()["scopes"] == [
            "t:read",
            "e:read",
        ]
        assert (await c.get("/api/events", headers=token)).status_code == 200
    # straight to a service's port: forged identity headers count for nothing
    forged = {
        "X-Tracseq-Identity-Subject": "admin",
        "X-Tracseq-Identity-Scopes": "admin",
        "X-Tracseq-Identity": provider.token(scopes="admin"),  # a token is no assertion
    }
    async with httpx.AsyncClient(base_url=services["templates"]) as direct:
        _refusal(await direct.get("/api/templates", headers=forged), 401)


async def test_a_rotated_key_is_fetched_on_first_sight_and_a_removed_key_stops_working(
    idp: tuple[Idp, str], services: dict[str, str]
) -> None:
    provider, url = idp
    gateway = _gateway(url, services, jwks_cache_seconds=0.5)
    async with serve(gateway) as base, httpx.AsyncClient(base_url=base) as c:
        old = _bearer(provider.token("k1", scopes="t:read"))
        assert (await c.get("/api/templates", headers=old)).status_code == 200
        # rotation a moment after the keys were fetched: the issuer adds k2 and signs
        # with it; the first k2 token waits for the next allowed fetch instead of a 401,
        # and live k1 tokens keep working
        provider.keys["k2"] = Ed25519PrivateKey.generate()
        new = _bearer(provider.token("k2", scopes="t:read"))
        fetched = provider.fetches
        assert (await c.get("/api/templates", headers=new)).status_code == 200
        assert provider.fetches == fetched + 1  # the unknown kid fetched the keys at once
        assert (await c.get("/api/templates", headers=old)).status_code == 200
        # k1 removed: once the cached keys are stale, k1 tokens are refused
        del provider.keys["k1"]
        await asyncio.sleep(0.6)
        _refusal(await c.get("/api/templates", headers=old), 401)
        assert (await c.get("/api/templates", headers=new)).status_code == 200


async def test_many_unknown_key_ids_at_once_fetch_the_keys_once(
    idp: tuple[Idp, str], services: dict[str, str]
) -> None:
    provider, url = idp
    gateway = _gateway(url, services, jwks_min_refresh_seconds=30)
    async with serve(gateway) as base, httpx.AsyncClient(base_url=base) as c:
        good = _bearer(provider.token(scopes="t:read"))
        assert (await c.get("/api/templates", headers=good)).status_code == 200
        before = provider.fetches
        provider.keys["k9"] = Ed25519PrivateKey.generate()
        forged = [_bearer(provider.token("k9", scopes="t:read", sub=f"u{i}")) for i in range(20)]
        del provider.keys["k9"]  # never published: every one of them is unknown
        answers = await asyncio.gather(*(c.get("/api/templates", headers=h) for h in forged))
        assert {r.status_code for r in answers} == {401}
        assert provider.fetches - before <= 1


async def test_expired_tokens_and_confused_algorithms_are_401(
    idp: tuple[Idp, str], services: dict[str, str]
) -> None:
    provider, url = idp
    async with serve(_gateway(url, services)) as base, httpx.AsyncClient(base_url=base) as c:
        expired = provider.token(scopes="admin", ttl=-60)
        _refusal(await c.get("/api/templates", headers=_bearer(expired)), 401)
        hs = jwt.encode(
            {"iss": ISSUER, "aud": "tracseq", "sub": "x", "exp": 2**31, "scope": "admin"},
            "k" * 40,
            algorithm="HS256",
            headers={"kid": "k1"},
        )
        _refusal(await c.get("/api/templates", headers=_bearer(hs)), 401)
        other_audience = provider.token(scopes="admin", aud="billing")
        _refusal(await c.get("/api/templates", headers=_bearer(other_audience)), 401)


def test_scopes_need_an_auth_section_and_name_real_scopes() -> None:
    with pytest.raises(Exception, match=r"routes\[0\]\.scopes"):
        parse_config(
            {
                "pools": {"t": {"instances": ["127.0.0.1:1"]}},
                "routes": [{"prefix": "/", "upstream": "t", "scopes": ["t:read"]}],
            }
        )
    with pytest.raises((ValidationError, Exception)):
        parse_config(
            {
                "pools": {"t": {"instances": ["127.0.0.1:1"]}},
                "routes": [{"prefix": "/", "upstream": "t", "scopes": {"reed": ["x"]}}],
                "auth": {"api_keys": [{"id": "a", "sha256": "0" * 64}]},
            }
        )
