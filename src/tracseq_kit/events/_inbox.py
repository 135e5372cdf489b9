"""Inbox: which events a consumer group has handled, keyed on (source, id)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.events._cloudevent import CloudEvent

__all__ = ["Inbox"]

# Rows recorded before the inbox had a source column carry source '': they stand for
# "any source" until the retention purges them.
_CLAIM = """
INSERT INTO tracseq_inbox (consumer, source, event_id)
SELECT $1, t.s, t.i FROM unnest($2::text[], $3::text[]) AS t(s, i)
WHERE NOT EXISTS (
    SELECT 1 FROM tracseq_inbox o WHERE o.consumer = $1 AND o.source = '' AND o.event_id = t.i)
ON CONFLICT DO NOTHING
RETURNING source, event_id
"""


class Inbox:
    """Remembers which events a consumer group has handled (``tracseq_inbox``).

    An event is identified by its ``(source, id)``, as CloudEvents defines it.
    :meth:`process` runs one effect at most once per event; :meth:`claim` records a
    whole batch in one statement inside the caller's transaction and says which events
    are new. Entries older than ``retention`` are deleted by :meth:`purge`, which an
    :class:`EventConsumer` with this inbox runs every ``purge_interval`` seconds
    (measured on ``clock``); redeliveries older than the retention are handled again,
    so keep it longer than any redelivery or replay window.
    """

    def __init__(
        self,
        pool: Any,
        *,
        consumer: str,
        retention: timedelta = timedelta(days=30),
        purge_interval: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not consumer:
            raise ConfigurationError("an inbox needs a consumer name")
        if retention < timedelta(0) or purge_interval <= 0:
            raise ConfigurationError("retention must be >= 0 and purge_interval > 0")
        self._pool = pool
        self._consumer = consumer
        self._retention = retention
        self._purge_interval = purge_interval
        self._clock = clock
        self._next_purge = clock() + purge_interval
        self.purged = 0

    @property
    def pool(self) -> Any:
        """The asyncpg pool the inbox records in."""
        return self._pool

    @property
    def consumer(self) -> str:
        """The consumer group whose handled events this inbox records."""
        return self._consumer

    async def claim(self, conn: Any, events: Sequence[CloudEvent[Any]]) -> list[bool]:
        """Record ``events`` as handled, in one statement on ``conn`` (inside the
        caller's transaction); returns, per event, whether it is new (an event seen
        before, or earlier in the same batch, is not). If the transaction rolls back,
        nothing is recorded."""
        if not events:
            return []
        rows = await conn.fetch(
            _CLAIM, self._consumer, [e.source for e in events], [e.id for e in events]
        )
        fresh = {(r["source"], r["event_id"]) for r in rows}
        out: list[bool] = []
        for event in events:
            identity = (event.source, event.id)
            out.append(identity in fresh)
            fresh.discard(identity)  # a duplicate later in the batch is not new
        return out

    async def process(
        self, source: str, event_id: str, effect: Callable[[Any], Awaitable[object]]
    ) -> bool:
        """Run ``effect(conn)`` once per ``(source, event_id)``, in a transaction that
        also records it; False if it already ran. If the effect raises, nothing is
        recorded, so a retry runs it again."""
        async with self._pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetch(_CLAIM, self._consumer, [source], [event_id])
            if not fresh:
                return False
            await effect(conn)
            return True

    async def purge(self) -> int:
        """Delete this consumer's entries older than ``retention``; returns how many."""
        async with self._pool.acquire() as conn:
            status = await conn.execute(
                "DELETE FROM tracseq_inbox"
                " WHERE consumer = $1 AND handled_at < now() - $2::interval",
                self._consumer,
                self._retention,
            )
        self._next_purge = self._clock() + self._purge_interval
        count = int(status.split()[-1])
        self.purged += count
        return count

    async def purge_if_due(self) -> int | None:
        """:meth:`purge` when ``purge_interval`` has passed since the last one, else None."""
        if self._clock() < self._next_purge:
            return None
        return await self.purge()
