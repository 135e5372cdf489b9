"""The gateway in front of real upstream processes on loopback."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import jwt
import pytest
from gateway_support import Upstream, config, serve, upstreams
from prometheus_client import CollectorRegistry

from tracseq_kit import CircuitOpenError
from tracseq_kit.gateway import Gateway, RateLimitVerdict
from tracseq_kit.identity import AssertionSigner, AssertionVerifier, Identity, generate_keypair
from tracseq_kit.resilience import BreakerState, CircuitBreaker

pytestmark = pytest.mark.anyio


def _gw(pair: list[Upstream], **extra: Any) -> Gateway:
    routes = extra.pop("routes", None) or [
        {"prefix": "/api/templates", "upstream": "t", "rewrite": "/echo"},
    ]
    return Gateway(config({"t": [u.address for u in pair]}, routes, **extra))


def _headers(resp: httpx.Response) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in resp.json()["headers"]:
        out.setdefault(k, []).append(v)
    return out


async def test_forwarding_headers_and_request_id(pair: list[Upstream]) -> None:
    async with serve(_gw(pair)) as base, httpx.AsyncClient(base_url=base) as client:
        r = await client.get(
            "/api/templates/a%20b?x=1",
            headers={"X-Forwarded-For": "10.0.0.9", "Host": "lims.example"},
        )
        assert r.status_code == 200
        doc = r.json()
        seen = _headers(r)
        assert doc["raw_path"] == "/echo/a%20b" and doc["query"] == "x=1"
        assert seen["x-forwarded-for"] == ["10.0.0.9, 127.0.0.1"]
        assert seen["x-forwarded-proto"] == ["http"]
        assert seen["x-forwarded-host"] == ["lims.example"]
        assert seen["forwarded"] == ['for=127.0.0.1;proto=http;host="lims.example"']
        assert seen["host"] == [f"127.0.0.1:{pair[0].port}"] or seen["host"] == [
            f"127.0.0.1:{pair[1].port}"
        ]
        rid = r.headers["x-request-id"]
        assert len(rid) == 32 and seen["x-request-id"] == [rid]
        assert seen["traceparent"][0].startswith("00-")

        tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        r = await client.get(
            "/api/templates", headers={"X-Request-ID": "req-42", "traceparent": tp}
        )
        seen = _headers(r)
        assert r.headers["x-request-id"] == "req-42" and seen["x-request-id"] == ["req-42"]
        assert seen["traceparent"] == [tp]
        # an unsafe request id is replaced
        for bad in ("x" * 200, "bad id<script>"):
            r = await client.get("/api/templates", headers={"X-Request-ID": bad})
            assert r.headers["x-request-id"] != bad
            assert len(r.headers["x-request-id"]) == 32


async def test_hop_by_hop_headers_are_removed_both_ways(pair: list[Upstream]) -> None:
    async with serve(_gw(pair)) as base, httpx.AsyncClient(base_url=base) as client:
        r = await client.get(
            "/api/templates",
            headers={
                "Connection": "keep-alive, X-Secret-Hop",
                "X-Secret-Hop": "1",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Proxy-Authorization": "x",
                "Upgrade": "h2c",
            },
        )
        seen = _headers(r)
        for name in ("x-secret-hop", "keep-alive", "te", "proxy-authorization", "upgrade"):
            assert name not in seen
        # the upstream names x-private-hop in its Connection header
        assert "x-private-hop" not in r.headers
        # one Date (the gateway's server adds it), never the upstream's in addition
        assert len(r.headers.get_list("date")) == 1


async def test_spoofed_identity_headers_are_stripped(pair: list[Upstream]) -> None:
    secret = "k" * 40
    private, public = generate_keypair()
    gw = _gw(
        pair,
        routes=[
            {"prefix": "/open", "upstream": "t", "rewrite": "/echo"},
            {"prefix": "/private", "upstream": "t", "rewrite": "/echo", "auth": True},
        ],
        auth={"jwt": {"algorithms": ["HS256"], "keys": [{"alg": "HS256", "secret": secret}]}},
        identity={"signing_key": private, "key_id": "gw"},
    )
    verifier = AssertionVerifier({"gw": public}, audience="t")
    forged = AssertionSigner(generate_keypair()[0], key_id="gw").assertion(
        Identity(subject="admin", method="jwt", scopes=("admin",)), "t"
    )
    spoof = {
        "X-Tracseq-Identity": forged.decode(),
        "X-Tracseq-Identity-Subject": "admin",
        "X-TracSeq-Identity-Scopes": "all",
    }
    async with serve(gw) as base, httpx.AsyncClient(base_url=base) as client:
        r = await client.get("/open", headers=spoof)
        assert not any(k.startswith("x-tracseq-identity") for k in _headers(r))
        r = await client.get("/private", headers=spoof)
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"].startswith("Bearer")
        token = jwt.encode({"sub": "alice", "exp": 2**31}, secret, algorithm="HS256")
        r = await client.get("/private", headers={**spoof, "Authorization": f"Bearer {token}"})
        seen = _headers(r)
        assert [k for k in seen if k.startswith("x-tracseq-identity")] == ["x-tracseq-identity"]
        (assertion,) = seen["x-tracseq-identity"]
        identity = verifier.verify(assertion.encode())
        assert (identity.subject, identity.method, identity.scopes) == ("alice", "jwt", ())


async def test_unknown_route_is_a_problem(pair: list[Upstream]) -> None:
    async with serve(_gw(pair)) as base, httpx.AsyncClient(base_url=base) as client:
        r = await client.get("/nowhere")
        assert r.status_code == 404
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["request_id"] == r.headers["x-request-id"]


async def test_body_size_limit(pair: list[Upstream]) -> None:
    async with serve(_gw(pair, max_body_bytes=1000)) as base, httpx.AsyncClient(base_url=base) as c:
        r = await c.post("/api/templates", content=b"x" * 1001)
        assert r.status_code == 413 and r.json()["status"] == 413

        async def chunks() -> Any:
            for _ in range(10):
                yield b"y" * 200

        r = await c.post("/api/templates", content=chunks())
        assert r.status_code == 413
        r = await c.post("/api/templates", content=b"x" * 1000)
        assert r.status_code == 200 and r.json()["body_length"] == 1000


async def test_chunked_request_body_is_streamed_upstream(pair: list[Upstream]) -> None:
    async def chunks() -> Any:
        for _ in range(50):
            yield b"z" * 1000

    async with serve(_gw(pair)) as base, httpx.AsyncClient(base_url=base) as c:
        r = await c.post("/api/templates", content=chunks())
        assert r.status_code == 200 and r.json()["body_length"] == 50_000


async def test_upstream_down_is_502_and_timeout_is_504() -> None:
    with upstreams("slow") as (up,):
        dead = Upstream("dead")  # never started: connection refused
        gw = Gateway(
            config(
                {"dead": [dead.address], "live": [up.address]},
                [
                    {"prefix": "/dead", "upstream": "dead"},
                    {"prefix": "/slow", "upstream": "live", "timeout": 0.3},
                ],
            )
        )
        async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
            # the startup health check found it down: no instance to try
            r = await c.get("/dead")
            assert r.status_code == 503 and "no instance available" in r.json()["detail"]
            # believed healthy (between checks) but refusing connections: 502
            gw.pools["dead"].instances[0].healthy = True
            r = await c.get("/dead")
            assert r.status_code == 502
            assert r.headers["content-type"] == "application/problem+json"
            assert "dead" in r.json()["detail"]
            r = await c.get("/slow", params={"ms": 2000})
            assert r.status_code == 504 and "0.3s" in r.json()["detail"]


async def test_killing_an_instance_mid_load_shows_no_5xx() -> None:
    with upstreams("a", "b") as ups:
        gw = Gateway(
            config(
                {"t": [u.address for u in ups]},
                [{"prefix": "/api/templates", "upstream": "t", "rewrite": "/echo"}],
            )
        )
        statuses: list[int] = []
        served_by: list[str] = []
        async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:

            async def worker() -> None:
                for _ in range(60):
                    r = await c.get("/api/templates/x")
                    statuses.append(r.status_code)
                    if r.status_code == 200:
                        served_by.append(r.json()["name"])

            async def killer() -> None:
                while len(statuses) < 100:  # noqa: ASYNC110 - polls a plain list, bounded by workers
                    await asyncio.sleep(0.005)
                ups[0].kill()

            await asyncio.gather(*(worker() for _ in range(6)), killer())
        assert len(statuses) == 360
        assert set(statuses) == {200}
        assert "a" in served_by[:100]
        assert set(served_by[-50:]) == {"b"}
        assert gw.pools["t"].instances[0].failures >= 1


async def test_non_idempotent_requests_are_not_retried_unless_keyed() -> None:
    with upstreams("live") as (up,):
        dead = Upstream("dead")
        gw = Gateway(
            config(
                {"t": [dead.address, up.address]},
                [{"prefix": "/x", "upstream": "t", "rewrite": "/echo"}],
            ),
        )
        gw.pools["t"].balancer = "round_robin"
        async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
            gw.pools["t"].instances[0].healthy = True  # between two health checks
            posts = [(await c.post("/x", content=b"{}")).status_code for _ in range(4)]
            assert 502 in posts and 200 in posts
            keyed = [
                (
                    await c.post("/x", content=b"{}", headers={"Idempotency-Key": f"k{i}"})
                ).status_code
                for i in range(4)
            ]
            assert keyed == [200] * 4


async def test_large_response_streams(pair: list[Upstream]) -> None:
    gw = _gw(pair, routes=[{"prefix": "/files", "upstream": "t", "strip_prefix": True}])
    async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
        total = 0
        async with c.stream("GET", "/files/big", params={"mb": 20}) as r:
            assert r.status_code == 200
            async for chunk in r.aiter_raw():
                total += len(chunk)
        assert total == 20 * 1024 * 1024


async def test_client_disconnect_stops_the_upstream_transfer(pair: list[Upstream]) -> None:
    gw = _gw(pair, routes=[{"prefix": "/", "upstream": "t"}])
    async with serve(gw) as base:
        async with httpx.AsyncClient(base_url=base) as c:
            async with c.stream("GET", "/drip", params={"chunks": 200, "ms": 50}) as r:
                async for _ in r.aiter_raw():
                    break  # go away after the first chunk (the drip would take 10 s)
        for _ in range(200):  # bounded wait for the gateway to notice
            if all(i.outstanding == 0 for i in gw.pools["t"].instances):
                break
            await asyncio.sleep(0.01)
        assert all(i.outstanding == 0 for i in gw.pools["t"].instances)


class FailingGuard:
    """A PoolGuard double: open after ``limit`` failures."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.failures = 0
        self.successes = 0

    async def admit(self) -> None:
        if self.failures >= self.limit:
            raise CircuitOpenError("t", remaining=4.2)

    async def record(self, permit: object, *, ok: bool) -> None:
        if ok:
            self.successes += 1
        else:
            self.failures += 1


async def test_pool_guard_seam_fast_fails_with_retry_after(pair: list[Upstream]) -> None:
    guard = FailingGuard(limit=2)
    gw = Gateway(
        config({"t": [pair[0].address]}, [{"prefix": "/", "upstream": "t", "retry": False}]),
        guard_factory=lambda name: guard,
    )
    async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
        assert (await c.get("/echo")).status_code == 200
        assert [(await c.get("/fail")).status_code for _ in range(2)] == [503, 503]
        r = await c.get("/echo")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "5"
        assert "circuit open" in r.json()["detail"]
    assert guard.successes == 1 and guard.failures == 2


class DenyAfter:
    def __init__(self, n: int) -> None:
        self.n = n
        self.keys: list[tuple[str, str]] = []

    async def check(self, *, policy: str, key: str) -> RateLimitVerdict:
        self.keys.append((policy, key))
        left = self.n - len(self.keys)
        headers = [(b"ratelimit-policy", f'"{policy}";q={self.n}'.encode())]
        return RateLimitVerdict(left >= 0, headers, retry_after=2.0)


async def test_rate_limit_seam(pair: list[Upstream]) -> None:
    hook = DenyAfter(2)
    gw = Gateway(
        config(
            {"t": [pair[0].address]},
            [{"prefix": "/", "upstream": "t", "rate_limit": "per-client"}],
            rate_limits={"policies": {"per-client": {"limit": 100, "period": 60}}},
        ),
        rate_limit=hook,  # an explicit hook replaces the configured limiters
    )
    async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
        codes = [(await c.get("/echo")).status_code for _ in range(3)]
        r = await c.get("/echo")
    assert codes == [200, 200, 429]
    assert r.headers["retry-after"] == "2"
    assert r.headers["ratelimit-policy"] == '"per-client";q=2'
    assert hook.keys[0] == ("per-client", "127.0.0.1")


async def test_probes_follow_the_lifecycle_not_the_upstreams() -> None:
    gw = Gateway(config({"t": ["127.0.0.1:1"]}, [{"prefix": "/", "upstream": "t"}]))
    transport = httpx.ASGITransport(app=gw)  # no lifespan: still starting
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        assert (await c.get("/livez")).status_code == 200
        assert (await c.get("/startupz")).status_code == 503
        assert (await c.get("/readyz")).json() == {"status": "fail"}
    async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
        for path in ("/livez", "/startupz", "/readyz"):  # the only upstream is down
            r = await c.get(path)
            assert r.status_code == 200 and r.json() == {"status": "pass"}, path
            assert r.headers["content-type"] == "application/health+json"
        assert (await c.get("/health")).status_code == 503
    transport = httpx.ASGITransport(app=gw)  # after shutdown: not ready, still started
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        assert (await c.get("/readyz")).status_code == 503
        assert (await c.get("/startupz")).status_code == 200


async def test_health_metrics_and_status() -> None:
    with upstreams("a", "b") as ups:
        gw = Gateway(
            config(
                {"t": [ups[0].address, ups[1].address], "e": [ups[1].address]},
                [
                    {"prefix": "/api/templates", "upstream": "t"},
                    {"prefix": "/api/events", "upstream": "e"},
                ],
            ),
            registry=CollectorRegistry(),  # metrics of this gateway only
        )
        async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
            await c.get("/api/templates/echo")
            r = await c.get("/health")
            assert r.status_code == 200 and r.json()["status"] == "healthy"
            ups[0].kill()
            doc = (await c.get("/health")).json()
            assert doc["status"] == "degraded"
            assert doc["services"]["t"]["status"] == "degraded"
            bad = [i for i in doc["services"]["t"]["instances"] if not i["ok"]]
            assert bad[0]["address"] == ups[0].address and "error" in bad[0]
            ups[1].kill()
            r = await c.get("/health")
            assert r.status_code == 503 and r.json()["status"] == "unhealthy"
            metrics = (await c.get("/metrics")).text
            assert 'tracseq_gateway_requests_total{route="/api/templates",status="200"}' in metrics
            assert "tracseq_gateway_upstream_requests_total" in metrics
            assert (
                'tracseq_gateway_request_duration_seconds_bucket{le="+Inf",route="/api/templates"}'
                in metrics
            )
            assert (
                f'tracseq_gateway_instance_up{{instance="{ups[0].address}",upstream="t"}} 0.0'
                in metrics
            )
            page = await c.get("/status")
            assert page.headers["content-type"].startswith("text/html")
            assert "http-equiv='refresh'" in page.text and "setInterval" in page.text
            assert ups[0].address in page.text and "down" in page.text


async def test_reload_keeps_in_flight_requests(pair: list[Upstream]) -> None:
    a, b = pair
    gw = Gateway(config({"a": [a.address], "b": [b.address]}, [{"prefix": "/", "upstream": "a"}]))
    async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
        slow = asyncio.create_task(c.get("/slow", params={"ms": 400}))
        await asyncio.sleep(0.1)
        gw.apply(config({"a": [a.address], "b": [b.address]}, [{"prefix": "/", "upstream": "b"}]))
        fast = await c.get("/echo")
        done = await slow
    assert fast.json()["name"] == "b"
    assert done.status_code == 200 and done.json()["name"] == "a"


async def test_reload_from_file_keeps_running_config_when_invalid(
    pair: list[Upstream], tmp_path: Any
) -> None:
    a, b = pair
    path = tmp_path / "gw.toml"

    def write(pool: str) -> None:
        path.write_text(
            f'[pools.a]\ninstances=["{a.address}"]\n[pools.b]\ninstances=["{b.address}"]\n'
            f'[[routes]]\nprefix="/"\nupstream="{pool}"\n'
        )

    write("a")
    gw = Gateway.from_file(path)
    async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
        assert (await c.get("/echo")).json()["name"] == "a"
        write("b")
        assert gw.reload()
        assert (await c.get("/echo")).json()["name"] == "b"
        write("nope")
        assert not gw.reload()
        assert (await c.get("/echo")).json()["name"] == "b"


def test_problem_bodies_are_json() -> None:
    from tracseq_kit.asgi import problem_body

    assert json.loads(problem_body(502, detail="x"))["status"] == 502


async def test_file_change_is_picked_up_without_a_signal(
    pair: list[Upstream], tmp_path: Any
) -> None:
    a, b = pair
    path = tmp_path / "gw.toml"

    def write(pool: str) -> None:
        path.write_text(
            f'[pools.a]\ninstances=["{a.address}"]\n[pools.b]\ninstances=["{b.address}"]\n'
            f'[[routes]]\nprefix="/"\nupstream="{pool}"\n'
        )

    write("a")
    gw = Gateway.from_file(path, watch_interval=0.02)
    async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
        assert (await c.get("/echo")).json()["name"] == "a"
        write("b")
        import os

        os.utime(path, (1, 1))  # a distinct mtime even on coarse file systems
        for _ in range(250):  # bounded: the watcher checks every 20 ms
            if gw.config.routes[0].upstream == "b":
                break
            await asyncio.sleep(0.02)
        assert (await c.get("/echo")).json()["name"] == "b"


async def test_instance_returning_to_health_gets_traffic_again() -> None:
    with upstreams("a", "b") as ups:
        gw = Gateway(
            config({"t": [u.address for u in ups]}, [{"prefix": "/", "upstream": "t"}]),
        )
        gw.pools["t"].balancer = "round_robin"
        async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:

            async def names(n: int) -> set[str]:
                return {(await c.get("/echo")).json()["name"] for _ in range(n)}

            assert await names(6) == {"a", "b"}
            ups[0].kill()
            await gw.check_health()
            assert await names(6) == {"b"}
            restarted = Upstream("a", port=ups[0].port).start()
            try:
                await gw.check_health()
                assert await names(6) == {"a", "b"}
            finally:
                restarted.kill()


async def test_all_instances_down_opens_the_breaker_and_recovery_closes_it() -> None:
    now = [100.0]
    clock = lambda: now[0]  # noqa: E731
    # The resilience module's breaker behind the seam: 2 failures of 3 calls open it.
    breaker = CircuitBreaker(
        "t",
        window_size=10,
        minimum_calls=3,
        wait_duration=5.0,
        half_open_probes=1,
        clock=clock,
    )
    with upstreams("a", "b") as ups:
        gw = Gateway(
            config({"t": [u.address for u in ups]}, [{"prefix": "/", "upstream": "t"}]),
            guard_factory=lambda name: breaker,
            clock=clock,
        )
        async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
            assert (await c.get("/echo")).status_code == 200
            for u in ups:
                u.kill()
            codes = [(await c.get("/echo")).status_code for _ in range(4)]
            # two instances refuse: 502 after the retry; then the breaker opens mid-way
            assert codes[0] == 502 and set(codes[1:]) == {503}
            assert breaker.state is BreakerState.OPEN
            fast = await c.get("/echo")
            assert fast.status_code == 503 and "circuit open" in fast.json()["detail"]
            assert fast.headers["retry-after"] == "5"
            restarted = Upstream("a", port=ups[0].port).start()
            try:
                now[0] += 5.0  # the cooldown passes: the next request is the probe
                await gw.check_health()  # a is back, b stays down
                r = await c.get("/echo")
                assert r.status_code == 200 and r.json()["name"] == "a"
                assert breaker.state is BreakerState.CLOSED
            finally:
                restarted.kill()
        assert "<td>closed</td>" in (await _status_text(gw))  # breaker state on /status


async def _status_text(gw: Gateway) -> str:
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await gw._status_endpoint({"query_string": b""}, send)
    return bytes(sent[1]["body"]).decode()


async def test_default_guard_is_a_circuit_breaker_per_pool_from_config() -> None:
    from tracseq_kit.gateway._config import parse_config

    with upstreams("a") as ups:
        cfg = parse_config(
            {
                "pools": {
                    "t": {
                        "instances": [ups[0].address],
                        "breaker": {"minimum_calls": 2, "wait_duration": 30},
                    },
                    "u": {"instances": [ups[0].address], "breaker": {"enabled": False}},
                },
                "routes": [
                    {"prefix": "/t", "upstream": "t", "strip_prefix": True, "retry": False},
                    {"prefix": "/u", "upstream": "u", "strip_prefix": True, "retry": False},
                ],
            }
        )
        gw = Gateway(cfg, registry=CollectorRegistry())
        async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
            assert [(await c.get("/t/fail")).status_code for _ in range(2)] == [503, 503]
            fast = await c.get("/t/echo")
            assert fast.status_code == 503 and "circuit open" in fast.json()["detail"]
            assert 29 <= int(fast.headers["retry-after"]) <= 30
            # A pool with the breaker disabled keeps forwarding.
            assert [(await c.get("/u/fail")).status_code for _ in range(3)] == [503] * 3
            assert (await c.get("/u/echo")).status_code == 200
    assert isinstance(gw._snap.pools["t"].guard, CircuitBreaker)


async def test_deadline_header_carries_the_shorter_of_route_and_client_deadline() -> None:
    with upstreams("a") as ups:
        gw = Gateway(
            config({"t": [ups[0].address]}, [{"prefix": "/", "upstream": "t", "timeout": 5}]),
            registry=CollectorRegistry(),
        )
        async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
            plain = (await c.get("/echo")).json()["headers"]
            shorter = (await c.get("/echo", headers={"x-request-deadline-ms": "1200"})).json()
            longer = (await c.get("/echo", headers={"x-request-deadline-ms": "99999"})).json()
            junk = (await c.get("/echo", headers={"x-request-deadline-ms": "soon"})).json()

    def sent(headers: Any) -> list[str]:
        if isinstance(headers, dict):
            return [v for k, v in headers.items() if k.lower() == "x-request-deadline-ms"]
        return [v for k, v in headers if k.lower() == "x-request-deadline-ms"]

    assert sent(plain) == ["5000"]
    assert sent(shorter["headers"]) == ["1200"]
    assert sent(longer["headers"]) == ["5000"]
    assert sent(junk["headers"]) == ["5000"]
