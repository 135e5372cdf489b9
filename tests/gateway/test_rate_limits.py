"""The gateway's configured rate limits: headers, 429s, config errors, and one limit
shared by two gateway processes through the real Redis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from gateway_support import config, free_port, serve, upstreams, wait_port
from prometheus_client import CollectorRegistry

from tracseq_kit import ConfigurationError
from tracseq_kit.gateway import Gateway

pytestmark = pytest.mark.anyio


async def test_configured_policy_limits_per_client_with_ietf_headers() -> None:
    with upstreams("a") as ups:
        gw = Gateway(
            config(
                {"t": [ups[0].address]},
                [{"prefix": "/", "upstream": "t", "rate_limit": "per-client"}],
                rate_limits={"policies": {"per-client": {"limit": 2, "period": 60}}},
            ),
            registry=CollectorRegistry(),
        )
        async with serve(gw) as base, httpx.AsyncClient(base_url=base) as c:
            ok = [await c.get("/echo") for _ in range(2)]
            limited = await c.get("/echo")
    assert [r.status_code for r in ok] == [200, 200]
    assert ok[0].headers["ratelimit-policy"] == '"per-client";q=2;w=60'
    assert ok[0].headers["ratelimit"] == '"per-client";r=1;t=30'
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "30"
    assert limited.headers["content-type"] == "application/problem+json"
    assert "per-client" in limited.json()["detail"]


def test_unknown_policy_is_a_configuration_error_naming_the_key() -> None:
    with pytest.raises((ConfigurationError, ValueError), match=r"routes\[0\]\.rate_limit"):
        config(
            {"t": ["127.0.0.1:1"]},
            [{"prefix": "/", "upstream": "t", "rate_limit": "nope"}],
            rate_limits={"policies": {"other": {"limit": 2, "period": 60}}},
        )


def test_two_gateway_processes_share_one_limit_through_redis(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    with upstreams("a") as ups:
        cfg = tmp_path / "gateway.toml"
        cfg.write_text(
            f"""
[pools.t]
instances = ["{ups[0].address}"]

[[routes]]
prefix = "/"
upstream = "t"
rate_limit = "shared"

[rate_limits]
redis_url = "{redis_url}"
prefix = "{redis_prefix}gw:"
on_failure = "closed"

[rate_limits.policies.shared]
limit = 6
period = 1000
"""
        )
        ports = [free_port(), free_port()]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tracseq_kit.gateway",
                    "--config",
                    str(cfg),
                    "--port",
                    str(port),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for port in ports
        ]
        try:
            for port in ports:
                wait_port(port)
            codes = []
            with httpx.Client() as c:
                for i in range(12):
                    codes.append(c.get(f"http://127.0.0.1:{ports[i % 2]}/echo").status_code)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)
    assert codes.count(200) == 6, codes  # 6 in total across both processes, not 6 each
    assert codes.count(429) == 6
