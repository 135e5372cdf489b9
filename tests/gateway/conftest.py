"""Fixtures of the gateway tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_support import Upstream, upstreams


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def pair() -> Iterator[list[Upstream]]:
    """Two upstream processes named a and b, shared by a test module."""
    with upstreams("a", "b") as ups:
        yield ups
