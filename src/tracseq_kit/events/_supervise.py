"""A consumer that keeps consuming: restarted with backoff when it fails, for as long
as a service runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tracseq_kit.events._consumer import EventConsumer
    from tracseq_kit.health import HealthRegistry

__all__ = ["ConsumerSupervisor", "running_consumer"]

log = logging.getLogger("tracseq_kit.events")


class ConsumerSupervisor:
    """Runs consumers made by ``factory`` one after the other: when one fails (Kafka
    gone, a commit that timed out), a fresh one resumes from the committed offsets after
    a pause growing from ``initial_delay`` to ``max_delay`` seconds.

    ``error`` holds the last failure while no consumer runs (None when consuming);
    ``restarts`` counts replacements; :meth:`check` raises while not consuming, for a
    health registry.
    """

    def __init__(
        self,
        factory: Callable[[], EventConsumer],
        *,
        initial_delay: float = 1.0,
        max_delay: float = 30.0,
    ) -> None:
        self._factory = factory
        self._initial = initial_delay
        self._max = max_delay
        self._consumer: EventConsumer | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self.error: str | None = None
        self.restarts = 0

    async def run(self) -> None:
        """Consume until :meth:`stop`; never raises for a consumer's failure."""
        delay = self._initial
        while not self._stopping:
            self._consumer = self._factory()
            try:
                await self._consumer.run()
                if self._stopping:
                    return
                self.error = "the consumer stopped by itself"
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
            log.warning("event consumer stopped (%s); restarting in %.0f s", self.error, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            if self._stopping:
                return
            delay = min(delay * 2, self._max)
            self.restarts += 1
            self.error = None

    async def check(self) -> None:
        """Raise ``ConnectionError`` naming the failure while no consumer runs."""
        if self.error is not None:
            raise ConnectionError(f"not consuming: {self.error}")

    def stop(self) -> None:
        """Ask the running consumer to stop and no new one to start."""
        self._stopping = True
        self._wake.set()
        if self._consumer is not None:
            self._consumer.stop()


@contextlib.asynccontextmanager
async def running_consumer(
    factory: Callable[[], EventConsumer],
    *,
    health: HealthRegistry | None = None,
    check_name: str = "consumer",
    initial_delay: float = 1.0,
    max_delay: float = 30.0,
    stop_timeout: float = 20.0,
) -> AsyncIterator[ConsumerSupervisor]:
    """Run a :class:`ConsumerSupervisor` over ``factory`` for the block's duration.

    With ``health``, a non-critical check ``check_name`` reports "degraded" with the
    reason while no consumer runs (the service stays ready: what it stored stays
    readable). On exit the consumer stops gracefully within ``stop_timeout`` seconds,
    then is cancelled::

        async with running_consumer(lambda: EventConsumer(...), health=app.state.health):
            yield
    """
    supervisor = ConsumerSupervisor(factory, initial_delay=initial_delay, max_delay=max_delay)
    if health is not None:
        health.add(check_name, supervisor.check, critical=False)
    task = asyncio.create_task(supervisor.run())
    try:
        yield supervisor
    finally:
        supervisor.stop()
        done, _ = await asyncio.wait({task}, timeout=stop_timeout)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
