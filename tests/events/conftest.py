from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from events_support import Backend

from tracseq_kit.events import EventPublisher


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "kafka"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        yield Backend("memory", None)
        return
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    b = Backend("kafka", bootstrap)
    async with EventPublisher(bootstrap) as publisher:
        b.publisher = publisher
        yield b
