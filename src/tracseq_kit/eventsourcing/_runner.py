"""ProjectionRunner: catch-up projections that follow the store's global feed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.eventsourcing._postgres import CHANNEL, PostgresEventStore
from tracseq_kit.eventsourcing._projection import Projection, catch_up, register_projections

__all__ = ["ProjectionRunner"]

logger = logging.getLogger("tracseq_kit.eventsourcing")


class ProjectionRunner:
    """Keeps catch-up projections up to date, off the write path.

    Each round gives every projection one batch (up to ``batch_size`` events after its
    checkpoint) in a transaction of its own that also moves the checkpoint. The runner
    wakes on the store's ``NOTIFY`` after each append, polling every ``poll_interval``
    seconds as a fallback. Several runners (several service instances) may run the same
    projections: they take turns on each checkpoint, and nothing is applied twice. A
    handler that fails rolls its batch back; the runner logs it and retries with
    exponential ``backoff`` (min, max seconds) — the projection stays behind until
    the handler is fixed, the others go on.

    Before reading past what it last knew complete, a round learns the safe head
    (:meth:`PostgresEventStore.head_position`), which holds appends back for an instant;
    if appends in flight do not finish within ``head_wait`` seconds the round is
    skipped.
    """

    def __init__(
        self,
        store: PostgresEventStore,
        projections: Sequence[Projection],
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        backoff: tuple[float, float] = (0.1, 10.0),
        head_wait: float = 1.0,
    ) -> None:
        if batch_size < 1:
            raise ConfigurationError("batch_size must be at least 1")
        register_projections(store.registry, projections)
        inline = {p.name for p in store.inline}
        both = [p.name for p in projections if p.name in inline]
        if both:
            raise ConfigurationError(
                f"projections {both} already run inline in the store; run each one way"
            )
        self._store = store
        self.projections = tuple(projections)
        self._batch = batch_size
        self._poll = poll_interval
        self._backoff_min, self._backoff_max = backoff
        self._head_wait = head_wait
        self._head: int | None = None
        self._at: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._stopping = False

    async def run_once(self) -> int:
        """Give each projection one batch; returns how many events were applied.

        0 means every projection is at the head, or in-flight appends kept the head
        from being read this time. Handler errors propagate.
        """
        if self._head is None or all(
            self._at.get(p.name, -1) >= self._head for p in self.projections
        ):
            # Learning the head briefly holds appends back: only when all caught up.
            head = await self._store._safe_head(self._head_wait)
            if head is None:
                return 0
            self._head = head
        applied = 0
        for projection in self.projections:
            async with self._store.transaction() as conn:
                n, self._at[projection.name] = await catch_up(
                    conn,
                    self._store,
                    projection,
                    batch_size=self._batch,
                    head=self._head,
                    to_head=False,
                )
            applied += n
        return applied

    async def catch_up(self) -> int:
        """Run rounds until every projection is at the head; returns events applied."""
        total = 0
        while n := await self.run_once():
            total += n
        return total

    async def lag(self) -> dict[str, int]:
        """How many positions each projection is behind the head (0: up to date)."""
        head = await self._store.head_position()
        checkpoints = await self._store.checkpoints()
        return {p.name: max(0, head - checkpoints.get(p.name, 0)) for p in self.projections}

    def wake(self) -> None:
        """Run the next round now (what a NOTIFY does)."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the current round and leave :meth:`run`."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Run rounds until :meth:`stop`: at once while there is work, else on NOTIFY
        or every ``poll_interval`` seconds."""
        listener = await self._listen()
        delay = self._backoff_min
        try:
            while not self._stopping:
                # Cleared before the round, not before the wait: a NOTIFY that arrives
                # during the round then makes the wait return at once.
                self._wake.clear()
                try:
                    n = await self.run_once()
                except Exception as exc:
                    logger.warning(
                        "projection round failed (%s: %s); retrying in %.1fs",
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                    logger.debug("projection round failure", exc_info=True)
                    if self._stopping:
                        break
                    self._wake.clear()  # a NOTIFY must not cut the backoff short
                    await self._sleep(delay)
                    delay = min(self._backoff_max, delay * 2)
                    continue
                delay = self._backoff_min
                if n == 0:
                    await self._sleep(self._poll)
        finally:
            if listener is not None:
                await listener()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _listen(self) -> Any:
        pool = self._store._pool
        conn = None
        try:
            conn = await pool.acquire()
            await conn.add_listener(CHANNEL, self._notified)
        except Exception:
            logger.warning("projection runner: LISTEN unavailable, polling every %ss", self._poll)
            if conn is not None:
                with contextlib.suppress(Exception):
                    await pool.release(conn)
            return None

        async def close() -> None:
            with contextlib.suppress(Exception):
                await conn.remove_listener(CHANNEL, self._notified)
            with contextlib.suppress(Exception):
                await pool.release(conn)

        return close

    def _notified(self, *_: Any) -> None:
        self._wake.set()
