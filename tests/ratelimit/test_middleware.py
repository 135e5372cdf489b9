"""The ASGI middleware: keys, per-route and per-tenant limits, IETF headers, 429s."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracseq_kit import ConfigurationError
from tracseq_kit.ratelimit import RateLimitConfig, RateLimitMiddleware, client_ip

pytestmark = pytest.mark.anyio


async def ok_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
    await send({"type": "http.response.body", "body": b"ok"})


CONFIG = {
    "policies": {
        "default": {"limit": 3, "period": 60},
        "uploads": {"kind": "sliding_window", "limit": 1, "period": 60},
        "gold": {"limit": 10, "period": 60},
    },
    "default": ["default"],
    "routes": [{"prefix": "/upload", "methods": ["POST"], "policies": ["uploads"]}],
    "tenants": {"gold-lab": ["gold"]},
    "trusted_proxies": ["10.0.0.0/8"],
}


def client(app: Any, ip: str = "203.0.113.9") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(ip, 1234)), base_url="http://svc"
    )


async def test_headers_and_429_problem() -> None:
    app = RateLimitMiddleware(ok_app, config=CONFIG)
    async with client(app) as c:
        first = await c.get("/samples")
        assert first.status_code == 200 and first.headers["x-app"] == "1"
        assert first.headers["ratelimit-policy"] == '"default";q=3;w=60'
        assert first.headers["ratelimit"] == '"default";r=2;t=20'
        await c.get("/samples")
        await c.get("/samples")
        limited = await c.get("/samples")
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.headers["retry-after"] == "20"
    body = limited.json()
    assert body["policy"] == "default" and "default" in body["detail"]
    assert limited.headers["ratelimit"] == '"default";r=0;t=60'


async def test_retry_after_is_never_earlier_than_admission() -> None:
    app = RateLimitMiddleware(
        ok_app, config={"policies": {"p": {"limit": 3, "period": 10}}, "default": ["p"]}
    )
    async with client(app) as c:
        for _ in range(3):
            await c.get("/")
        limited = await c.get("/")
    # One unit every 3.33 s: Retry-After rounds up to 4, never down to 3.
    assert limited.headers["retry-after"] == "4"


async def test_per_route_and_per_tenant_policies() -> None:
    def tenant(scope: Any) -> str | None:
        return dict(scope["headers"]).get(b"x-test-tenant", b"").decode() or None

    app = RateLimitMiddleware(ok_app, config=CONFIG, tenant_func=tenant)
    async with client(app) as c:
        assert (await c.post("/upload/1")).status_code == 200
        assert (await c.post("/upload/2")).status_code == 429
        assert (await c.get("/upload/2")).status_code == 200  # GET is not that route
        gold = [await c.get("/x", headers={"x-test-tenant": "gold-lab"}) for _ in range(5)]
        assert all(r.status_code == 200 for r in gold)
        assert gold[0].headers["ratelimit-policy"].startswith('"gold"')


async def test_clients_are_keyed_separately_and_spoofed_xff_is_ignored() -> None:
    app = RateLimitMiddleware(ok_app, config=CONFIG)
    async with client(app, "203.0.113.9") as a, client(app, "198.51.100.7") as b:
        for _ in range(3):
            await a.get("/", headers={"x-forwarded-for": "1.2.3.4"})
        assert (await a.get("/", headers={"x-forwarded-for": "5.6.7.8"})).status_code == 429
        assert (await b.get("/")).status_code == 200


async def test_trusted_proxy_forwarded_address_is_the_key() -> None:
    app = RateLimitMiddleware(ok_app, config=CONFIG)
    async with client(app, "10.1.2.3") as proxy:
        for _ in range(3):
            await proxy.get("/", headers={"x-forwarded-for": "192.0.2.1"})
        assert (await proxy.get("/", headers={"x-forwarded-for": "192.0.2.1"})).status_code == 429
        assert (await proxy.get("/", headers={"x-forwarded-for": "192.0.2.2"})).status_code == 200


async def test_api_key_and_identity_keys() -> None:
    cfg = {**CONFIG, "key": "api_key"}
    app = RateLimitMiddleware(ok_app, config=cfg)
    async with client(app) as c:
        for _ in range(3):
            await c.get("/", headers={"x-api-key": "lab-a"})
        assert (await c.get("/", headers={"x-api-key": "lab-a"})).status_code == 429
        assert (await c.get("/", headers={"x-api-key": "lab-b"})).status_code == 200

    async def with_identity(scope: Any, receive: Any, send: Any) -> None:
        scope.setdefault("state", {})["identity"] = "user-42"
        await RateLimitMiddleware(ok_app, config={**CONFIG, "key": "identity"})(
            scope, receive, send
        )

    async with client(with_identity) as c:
        assert (await c.get("/")).status_code == 200


def test_configuration_errors_name_the_bad_key() -> None:
    with pytest.raises(ConfigurationError, match=r"routes\[0\]\.policies: unknown policy 'nope'"):
        RateLimitConfig.parse(
            {
                "policies": {"a": {"limit": 1, "period": 1}},
                "routes": [{"prefix": "/", "policies": ["nope"]}],
            }
        )
    with pytest.raises(ConfigurationError, match="limit"):
        RateLimitConfig.parse({"policies": {"a": {"limit": 0, "period": 1}}})
    with pytest.raises(ConfigurationError, match="trusted_proxies"):
        RateLimitConfig.parse({"policies": {}, "trusted_proxies": ["not-a-cidr"]})


TRUSTED = [ipaddress.ip_network("10.0.0.0/8")]


@given(
    st.ip_addresses(v=4).filter(lambda ip: not ip.is_private).map(str),
    st.lists(st.ip_addresses(v=4).map(str), max_size=4),
)
def test_an_untrusted_peer_is_always_the_key(peer: str, forwarded: list[str]) -> None:
    scope = {"client": (peer, 1), "headers": [(b"x-forwarded-for", ", ".join(forwarded).encode())]}
    assert client_ip(scope, TRUSTED) == peer


@given(
    st.lists(
        st.sampled_from(["10.0.0.1", "10.9.9.9", "192.0.2.1", "198.51.100.2", "junk"]),
        min_size=1,
        max_size=5,
    )
)
def test_the_key_is_never_a_trusted_proxy_when_an_untrusted_hop_exists(hops: list[str]) -> None:
    scope = {"client": ("10.0.0.5", 1), "headers": [(b"x-forwarded-for", ", ".join(hops).encode())]}
    key = client_ip(scope, TRUSTED)
    untrusted = [h for h in hops if h in ("192.0.2.1", "198.51.100.2", "junk")]
    if untrusted:
        last = untrusted[-1]
        assert key == (last if last != "junk" else "10.0.0.5")
