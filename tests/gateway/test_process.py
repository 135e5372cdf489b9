"""The gateway as its own process: memory while streaming, SIGHUP reload, bad config."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from gateway_support import Upstream, free_port, rss_kib, upstreams, wait_port

pytestmark = pytest.mark.anyio


def _write(path: Path, pool: str, a: Upstream, b: Upstream) -> None:
    path.write_text(
        f"max_body_bytes = {1 << 30}\n"
        f'[pools.a]\ninstances=["{a.address}"]\n[pools.b]\ninstances=["{b.address}"]\n'
        f'[[routes]]\nprefix="/"\nupstream="{pool}"\n'
    )


class GatewayProcess:
    def __init__(self, path: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tracseq_kit.gateway",
                "--config",
                str(path),
                "--port",
                str(self.port),
            ],
        )
        wait_port(self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[GatewayProcess, Path, list[Upstream]]]:
    with upstreams("a", "b") as ups:
        path = tmp_path / "gw.toml"
        _write(path, "a", *ups)
        gw = GatewayProcess(path)
        try:
            yield gw, path, ups
        finally:
            gw.stop()


async def test_large_bodies_stream_without_memory_growth(
    setup: tuple[GatewayProcess, Path, list[Upstream]],
) -> None:
    gw, _, _ = setup
    mib = 1024 * 1024
    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as c:
        await c.get("/echo")
        baseline = rss_kib(gw.proc.pid)

        async def upload() -> AsyncIterator[bytes]:
            block = b"u" * mib
            for _ in range(64):
                yield block

        r = await c.post("/upload", content=upload(), headers={"Idempotency-Key": "up-1"})
        assert r.status_code == 200 and r.json()["body_length"] == 64 * mib
        size = 64 * mib
        r = await c.put("/upload", content=b"p" * size)  # idempotent with Content-Length
        assert r.json()["body_length"] == size
        total = 0
        async with c.stream("GET", "/big", params={"mb": 128}) as resp:
            async for chunk in resp.aiter_raw():
                total += len(chunk)
        assert total == 128 * mib
    peak = rss_kib(gw.proc.pid, "VmHWM")
    # 64 MiB up and 128 MiB down went through; the gateway held only a few chunks
    assert peak - baseline < 24 * 1024, (baseline, peak)


async def test_sighup_reloads_without_dropping_in_flight(
    setup: tuple[GatewayProcess, Path, list[Upstream]],
) -> None:
    gw, path, ups = setup
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as c:
        assert (await c.get("/echo")).json()["name"] == "a"
        import asyncio

        slow = asyncio.create_task(c.get("/slow", params={"ms": 500}))
        await asyncio.sleep(0.15)
        _write(path, "b", *ups)
        os.kill(gw.proc.pid, signal.SIGHUP)
        for _ in range(100):
            if (await c.get("/echo")).json()["name"] == "b":
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("SIGHUP did not reload the routes")
        done = await slow
        assert done.status_code == 200 and done.json()["name"] == "a"
        assert gw.proc.poll() is None


def test_bad_config_exits_with_the_error(tmp_path: Path) -> None:
    path = tmp_path / "gw.toml"
    path.write_text('[pools.a]\ninstances=["h:1"]\n[[routes]]\nprefix="/"\nupstream="zz"\n')
    proc = subprocess.run(
        [sys.executable, "-m", "tracseq_kit.gateway", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "gw.toml: routes[0].upstream: unknown pool 'zz'" in proc.stderr
    assert "Traceback" not in proc.stderr
