"""Fixtures of the ASGI base's tests: call an app in-process, without a server."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def asgi_call() -> Any:
    """Call a pure ASGI app with one GET request; returns the httpx response."""

    async def call(app: Any, *, headers: Sequence[tuple[str, str]] = ()) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.get("/", headers=list(headers))

    return call
