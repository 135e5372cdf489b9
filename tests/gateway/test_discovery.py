"""The Redis service registry against the real Redis server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis
from gateway_support import Upstream, serve, upstreams

from tracseq_kit.gateway import Gateway, RedisRegistry, parse_config, register_instance

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def prefix() -> str:
    return f"gwtest-{uuid.uuid4().hex}"


@pytest.fixture
async def client(redis_url: str, prefix: str) -> AsyncIterator[aioredis.Redis]:
    c = aioredis.Redis.from_url(redis_url)
    yield c
    keys = [k async for k in c.scan_iter(f"{prefix}:*")]
    if keys:
        await c.delete(*keys)
    await c.aclose()


async def test_registrations_expire_without_heartbeat(client: aioredis.Redis, prefix: str) -> None:
    clock = Clock()
    reg = RedisRegistry(prefix=prefix, clock=clock, client=client)
    await reg.register("templates", "127.0.0.1:9001", ttl=10)
    await reg.register("templates", "127.0.0.1:9002", ttl=30)
    assert await reg.instances("templates") == ["127.0.0.1:9001", "127.0.0.1:9002"]
    clock.now += 11
    assert await reg.instances("templates") == ["127.0.0.1:9002"]
    await reg.deregister("templates", "127.0.0.1:9002")
    assert await reg.instances("templates") == []


async def test_register_instance_context_registers_and_removes(
    redis_url: str, client: aioredis.Redis, prefix: str
) -> None:
    reg = RedisRegistry(prefix=prefix, client=client)
    async with register_instance("events", "127.0.0.1:9100", redis_url=redis_url, prefix=prefix):
        assert await reg.instances("events") == ["127.0.0.1:9100"]
    assert await reg.instances("events") == []


async def test_gateway_routes_to_registered_instances(
    redis_url: str, client: aioredis.Redis, prefix: str
) -> None:
    with upstreams("registered") as (up,):
        cfg = parse_config(
            {
                "registry": {"url": redis_url, "prefix": prefix, "poll_interval": 60},
                "pools": {"t": {"service": "templates"}},
                "routes": [{"prefix": "/api/templates", "upstream": "t", "rewrite": "/echo"}],
            }
        )
        gw = Gateway(cfg)
        async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
            assert (await c.get("/api/templates")).status_code == 503
            async with register_instance(
                "templates", up.address, redis_url=redis_url, prefix=prefix
            ):
                await gw.refresh_registry()
                await gw.check_health()
                r = await c.get("/api/templates")
                assert r.status_code == 200 and r.json()["name"] == "registered"
            await gw.refresh_registry()
            assert gw.pools["t"].instances == ()
            assert (await c.get("/api/templates")).status_code == 503


async def test_unreachable_registry_keeps_last_known_instances(redis_url: str) -> None:
    dead = Upstream("x")  # a port nothing listens on
    cfg = parse_config(
        {
            "registry": {"url": f"redis://127.0.0.1:{dead.port}/0"},
            "pools": {"t": {"service": "templates", "instances": ["127.0.0.1:1"]}},
            "routes": [{"prefix": "/", "upstream": "t"}],
        }
    )
    gw = Gateway(cfg)
    gw._redis = RedisRegistry(cfg.registry.url)  # type: ignore[union-attr]
    await gw.refresh_registry()  # logs, does not raise
    assert [i.address for i in gw.pools["t"].instances] == ["127.0.0.1:1"]
    await gw._redis.aclose()
