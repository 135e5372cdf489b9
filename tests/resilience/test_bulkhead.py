"""Bulkhead: concurrency cap, bounded wait, permits always released."""

from __future__ import annotations

import anyio
import pytest

from tracseq_kit import BulkheadFullError, ConfigurationError
from tracseq_kit.resilience import Bulkhead

pytestmark = pytest.mark.anyio


async def test_caps_concurrency_and_rejects_without_waiting() -> None:
    bulkhead = Bulkhead("db", max_concurrent=2)
    gate = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.call, gate.wait)
        tg.start_soon(bulkhead.call, gate.wait)
        await anyio.wait_all_tasks_blocked()
        assert bulkhead.in_use == 2
        with pytest.raises(BulkheadFullError):
            await bulkhead.call(anyio.sleep, 0)
        gate.set()
    assert bulkhead.in_use == 0
    assert bulkhead.rejected == 1


async def test_bounded_wait_gets_a_freed_permit() -> None:
    bulkhead = Bulkhead("db", max_concurrent=1, max_wait=5)
    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.call, anyio.sleep, 0.01)
        await anyio.wait_all_tasks_blocked()
        await bulkhead.call(anyio.sleep, 0)


async def test_bounded_wait_times_out() -> None:
    bulkhead = Bulkhead("db", max_concurrent=1, max_wait=0.01)
    gate = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(bulkhead.call, gate.wait)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(BulkheadFullError):
            await bulkhead.call(anyio.sleep, 0)
        gate.set()


async def test_permits_released_on_error_and_cancellation() -> None:
    bulkhead = Bulkhead("db", max_concurrent=1)

    async def boom() -> None:
        raise RuntimeError

    with pytest.raises(RuntimeError):
        await bulkhead.call(boom)
    assert bulkhead.in_use == 0
    with anyio.move_on_after(0.01):
        await bulkhead.call(anyio.sleep, 10)
    assert bulkhead.in_use == 0

    @bulkhead
    async def decorated() -> int:
        return 1

    assert await decorated() == 1


def test_invalid_options() -> None:
    with pytest.raises(ConfigurationError):
        Bulkhead("x", max_concurrent=0)
    with pytest.raises(ConfigurationError):
        Bulkhead("x", max_concurrent=1, max_wait=-1)
