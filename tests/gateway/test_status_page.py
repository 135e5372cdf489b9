"""The /status page rendered by a real headless Chromium (Debian's `chromium`)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest
from gateway_support import config, serve, upstreams

from tracseq_kit.gateway import Gateway

pytestmark = pytest.mark.anyio

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


async def _chromium(url: str, profile: Path, *extra: str) -> str:
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *extra,
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return out.decode()


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium: apt-get install chromium")
async def test_status_page_shows_services_and_refreshes_itself(tmp_path: Path) -> None:
    with upstreams("a", "b") as ups:
        gw = Gateway(
            config(
                {"templates": [ups[0].address, ups[1].address], "events": [ups[1].address]},
                [
                    {"prefix": "/api/templates", "upstream": "templates"},
                    {"prefix": "/api/events", "upstream": "events"},
                ],
            )
        )
        status_hits = 0

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            nonlocal status_hits
            if scope["type"] == "http" and scope["path"] == "/status":
                status_hits += 1
            await gw(scope, receive, send)

        async with serve(counting) as base:  # type: ignore[arg-type]
            import httpx

            async with httpx.AsyncClient(base_url=base) as c:
                for _ in range(3):
                    await c.get("/api/templates/echo")
            ups[0].kill()
            await gw.check_health()
            dom = await _chromium(
                f"{base}/status?refresh=1000", tmp_path / "profile", "--virtual-time-budget=2500"
            )
        assert "TracSeq gateway" in dom
        assert 'data-service="templates"' in dom and 'data-service="events"' in dom
        assert ups[0].address in dom and ups[1].address in dom
        assert 'class="down"' in dom and 'class="degraded"' in dom
        assert "/api/templates" in dom
        # the page refreshed itself (1 s period) within 2.5 s of virtual time
        assert status_hits >= 3
        assert 'data-refreshes="2"' in dom
