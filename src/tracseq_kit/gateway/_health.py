"""Active health checks of upstream instances and the aggregated ``/health`` report."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from tracseq_kit._http1 import ConnectionPool, build_head
from tracseq_kit.asgi import worst
from tracseq_kit.gateway._config import PoolConfig
from tracseq_kit.gateway._pool import Instance, UpstreamPool

__all__ = ["check_pools", "probe"]


async def probe(
    connections: ConnectionPool, cfg: PoolConfig, inst: Instance, *, now: float
) -> dict[str, Any]:
    """GET the instance's health path within ``cfg.health_timeout``; update ``healthy``.

    Never raises for upstream trouble: errors and timeouts become ``ok: false`` with an
    ``error`` text in the returned detail.
    """
    head = build_head(b"GET", cfg.health_path.encode(), [(b"host", inst.host_header)])
    start = time.perf_counter()
    detail: dict[str, Any] = {"address": inst.address}
    try:
        async with asyncio.timeout(cfg.health_timeout):
            resp = await connections.request(
                inst.host, inst.port, head, connect_timeout=cfg.health_timeout
            )
            async for _ in resp.iter_body():
                pass
        inst.healthy = 200 <= resp.status < 300
        detail["http_status"] = resp.status
    except TimeoutError:
        inst.healthy = False
        detail["error"] = f"no answer within {cfg.health_timeout}s"
    except (ConnectionError, OSError) as exc:
        inst.healthy = False
        detail["error"] = str(exc)
    detail["ok"] = inst.healthy
    detail["ejected"] = inst.healthy and not inst.available(now)
    detail["latency_ms"] = round((time.perf_counter() - start) * 1000, 2)
    return detail


async def check_pools(
    connections: ConnectionPool,
    pools: Mapping[str, tuple[UpstreamPool, PoolConfig]],
    *,
    clock: Callable[[], float],
) -> dict[str, Any]:
    """Probe every instance of every pool concurrently and aggregate the verdicts.

    A pool is ``healthy`` when all its instances are available, ``degraded`` when some
    are, ``unhealthy`` when none is; the overall status is the worst pool status.
    """
    now = clock()
    jobs = [
        probe(connections, cfg, inst, now=now)
        for pool, cfg in pools.values()
        for inst in pool.instances
    ]
    results = iter(await asyncio.gather(*jobs))
    services: dict[str, Any] = {}
    for name, (pool, _) in pools.items():
        details = [next(results) for _ in pool.instances]
        services[name] = {"status": pool.state(), "instances": details}
    return {"status": worst(s["status"] for s in services.values()), "services": services}
