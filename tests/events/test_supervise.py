"""running_consumer: a consumer that fails is replaced, and its outage reported."""

from __future__ import annotations

import asyncio

import pytest

from tracseq_kit.events import ConsumerSupervisor, running_consumer
from tracseq_kit.health import HealthRegistry

pytestmark = pytest.mark.anyio


class _FlakyConsumer:
    """Fails its first run like a consumer whose commit timed out; later runs consume."""

    runs = 0

    def __init__(self) -> None:
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        _FlakyConsumer.runs += 1
        if _FlakyConsumer.runs == 1:
            raise TimeoutError("commit did not finish in 30 s")
        await self._stopped.wait()

    def stop(self) -> None:
        self._stopped.set()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _until(condition: object) -> None:
    for _ in range(500):  # bounded: the supervisor acts on its own schedule
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_failed_consumer_is_replaced_and_reported_meanwhile() -> None:
    _FlakyConsumer.runs = 0
    health = HealthRegistry("events")
    async with running_consumer(
        _FlakyConsumer,  # type: ignore[arg-type]
        health=health,
        initial_delay=0.2,
    ) as supervisor:
        await _until(lambda: supervisor.error is not None)
        with pytest.raises(ConnectionError, match="not consuming: TimeoutError: commit did not"):
            await supervisor.check()
        report = await health.run()
        assert report.status == "warn"  # degraded, not down: the check is not critical
        await _until(lambda: supervisor.restarts == 1 and supervisor.error is None)
        await supervisor.check()  # a fresh consumer runs
        assert _FlakyConsumer.runs == 2
    assert _FlakyConsumer.runs == 2  # stopped, and no new one started


async def test_stop_during_the_pause_starts_no_new_consumer() -> None:
    _FlakyConsumer.runs = 0
    supervisor = ConsumerSupervisor(_FlakyConsumer, initial_delay=30)  # type: ignore[arg-type]
    task = asyncio.create_task(supervisor.run())
    await _until(lambda: supervisor.error is not None)
    supervisor.stop()
    await asyncio.wait_for(task, 5)  # no 30 s wait: stop wakes the pause
    assert _FlakyConsumer.runs == 1
