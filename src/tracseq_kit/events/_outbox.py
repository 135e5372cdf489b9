"""Transactional outbox on PostgreSQL (asyncpg) and the relay that publishes it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.resources import files
from typing import Any

from opentelemetry import context as otel_context

from tracseq_kit.db import apply_migrations
from tracseq_kit.events._binding import ContentMode, KafkaMessage, to_kafka
from tracseq_kit.events._cloudevent import CloudEvent
from tracseq_kit.telemetry._propagation import extract_kafka_context, kafka_trace_headers

__all__ = ["Inbox", "Outbox", "OutboxRelay", "migrate", "running_relay"]

logger = logging.getLogger("tracseq_kit.events")

CHANNEL = "tracseq_outbox"

_HEADS = """
SELECT o.id, o.key FROM tracseq_outbox o
WHERE o.published_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM tracseq_outbox p
      WHERE p.published_at IS NULL AND p.key = o.key AND p.id < o.id)
ORDER BY o.id
LIMIT $1
FOR UPDATE OF o SKIP LOCKED
"""
_RUNS = """
SELECT id, topic, key, value, headers, trace_context FROM tracseq_outbox
WHERE published_at IS NULL AND (key = ANY($1::text[]) OR id = ANY($2::bigint[]))
ORDER BY id
LIMIT $3
"""


async def migrate(conn: Any) -> list[str]:
    """Create or upgrade the outbox and inbox tables (idempotent; safe to race)."""
    return await apply_migrations(
        conn, files("tracseq_kit.events").joinpath("sql"), namespace="tracseq_kit.events"
    )


class Outbox:
    """Writes events into ``tracseq_outbox`` inside the caller's transaction.

    ``await outbox.add(conn, "tracseq.templates", event)`` inserts the encoded Kafka
    message (key, value, headers) with the current trace context, and notifies the
    relay; if the caller's transaction rolls back, the event was never written. Create
    the tables with :func:`migrate`.
    """

    def __init__(self, *, mode: ContentMode = "binary") -> None:
        self._mode = mode

    async def add(
        self, conn: Any, topic: str, event: CloudEvent[Any], *, key: str | None = None
    ) -> int:
        """Insert ``event`` for ``topic``; returns its outbox id."""
        (row_id,) = await self.add_many(conn, topic, [event], key=key)
        return row_id

    async def add_many(
        self, conn: Any, topic: str, events: Sequence[CloudEvent[Any]], *, key: str | None = None
    ) -> list[int]:
        """Insert several events in one statement (one round trip); returns their ids,
        in order. Order per key is the order given."""
        trace = json.dumps({k: v.decode("latin-1") for k, v in kafka_trace_headers()})
        keys: list[str | None] = []
        values: list[bytes | None] = []
        headers: list[str] = []
        for event in events:
            message = to_kafka(event, mode=self._mode)
            keys.append(key if key is not None else (message.key.decode() if message.key else None))
            values.append(message.value)
            headers.append(json.dumps([[k, v.decode("latin-1")] for k, v in message.headers]))
        rows = await conn.fetch(
            """INSERT INTO tracseq_outbox (topic, key, value, headers, trace_context)
               SELECT $1, k, v, h::jsonb, $5::jsonb
               FROM unnest($2::text[], $3::bytea[], $4::text[]) WITH ORDINALITY AS t(k, v, h, n)
               ORDER BY n
               RETURNING id""",
            topic,
            keys,
            values,
            headers,
            trace,
        )
        await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
        return sorted(r["id"] for r in rows)


class OutboxRelay:
    """Publishes pending outbox rows to Kafka, in id order per key, and marks them.

    Woken by ``LISTEN tracseq_outbox`` (the NOTIFY of :meth:`Outbox.add`), with polling
    every ``poll_interval`` seconds as fallback. Each round claims the first pending row
    of up to ``batch_size`` keys with ``FOR UPDATE SKIP LOCKED`` — so another relay never
    takes a key this one holds — then publishes that key's pending rows in order
    (pipelined) and marks the acknowledged prefix of each key published in the same
    transaction. Rows that fail stay pending and are retried with exponential backoff
    (``backoff``) while Kafka is down; nothing is lost. After a crash between publishing
    and marking, rows are published again: consumers dedupe by event id (:class:`Inbox`).
    Published rows older than ``retention`` are purged every ``purge_interval`` s.
    """

    def __init__(
        self,
        pool: Any,
        publisher: Any,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        backoff: tuple[float, float] = (0.1, 10.0),
        retention: timedelta = timedelta(days=7),
        purge_interval: float = 300.0,
        publish_timeout: float = 30.0,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._batch = batch_size
        self._poll = poll_interval
        self._backoff_min, self._backoff_max = backoff
        self._retention = retention
        self._purge_interval = purge_interval
        self._publish_timeout = publish_timeout
        self._wake = asyncio.Event()
        self._stopping = False
        self.published = 0
        self.failures = 0

    def wake(self) -> None:
        """Run the next round now (what a NOTIFY does)."""
        self._wake.set()

    def stop(self) -> None:
        """Finish the current round and leave :meth:`run`."""
        self._stopping = True
        self._wake.set()

    async def run_once(self) -> int:
        """Publish one round; returns how many rows were published. Raises nothing for
        Kafka failures (they are counted and the rows stay pending)."""
        async with self._pool.acquire() as conn, conn.transaction():
            heads = await conn.fetch(_HEADS, self._batch)
            if not heads:
                return 0
            keys = [h["key"] for h in heads if h["key"] is not None]
            lone = [h["id"] for h in heads if h["key"] is None]
            rows = await conn.fetch(_RUNS, keys, lone, self._batch * 10)
            sent: list[tuple[Any, asyncio.Future[Any] | BaseException]] = []
            for row in rows:
                try:
                    future = await self._send(row)
                except Exception as exc:
                    sent.append((row, exc))
                else:
                    sent.append((row, future))
            futures = [o for _, o in sent if isinstance(o, asyncio.Future)]
            if futures:  # one bounded wait for the whole round, not a timer per row
                await asyncio.wait(futures, timeout=self._publish_timeout)
            done: list[int] = []
            failed: dict[int, str] = {}
            blocked: set[str] = set()  # keys with a failed row: later rows wait
            for row, outcome in sent:
                error: BaseException | None = None
                if isinstance(outcome, BaseException):
                    error = outcome
                elif not outcome.done():
                    outcome.cancel()
                    error = TimeoutError(f"no acknowledgement within {self._publish_timeout}s")
                elif outcome.cancelled():
                    error = asyncio.CancelledError()
                else:
                    error = outcome.exception()
                key = row["key"]
                if error is None and (key is None or key not in blocked):
                    done.append(row["id"])
                else:
                    if key is not None:
                        blocked.add(key)
                    failed[row["id"]] = repr(error) if error else "an earlier row of its key failed"
            if done:
                await conn.execute(
                    "UPDATE tracseq_outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                    done,
                )
            if failed:
                await conn.executemany(
                    "UPDATE tracseq_outbox SET attempts = attempts + 1, last_error = $2"
                    " WHERE id = $1",
                    list(failed.items()),
                )
        self.published += len(done)
        if failed:
            self.failures += 1
            raise _RoundFailed(len(failed))
        return len(done)

    async def _send(self, row: Any) -> asyncio.Future[Any]:
        headers = [(k, v.encode("latin-1")) for k, v in json.loads(row["headers"])]
        trace = json.loads(row["trace_context"])
        message = KafkaMessage(
            row["key"].encode() if row["key"] is not None else None, row["value"], headers
        )
        token = otel_context.attach(
            extract_kafka_context([(k, v.encode("latin-1")) for k, v in trace.items()])
        )
        try:
            return await self._publisher.send_message(row["topic"], message)  # type: ignore[no-any-return]
        finally:
            otel_context.detach(token)

    async def purge(self) -> int:
        """Delete published rows older than ``retention``; returns how many."""
        async with self._pool.acquire() as conn:
            status = await conn.execute(
                "DELETE FROM tracseq_outbox WHERE published_at < now() - $1::interval",
                self._retention,
            )
        return int(status.split()[-1])

    async def run(self) -> None:
        """Relay until :meth:`stop`: rounds on NOTIFY or every ``poll_interval``."""
        listener = await self._listen()
        delay = self._backoff_min
        loop = asyncio.get_running_loop()
        next_purge = loop.time() + self._purge_interval
        try:
            while not self._stopping:
                try:
                    n = await self.run_once()
                    delay = self._backoff_min
                except _RoundFailed as exc:
                    logger.warning(
                        "outbox relay: %s rows not published; retrying in %.1fs", exc.count, delay
                    )
                    await self._sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(self._backoff_max, delay * 2)
                    continue
                except Exception as exc:  # the database is down, typically: one line each
                    logger.warning(
                        "outbox relay round failed (%s: %s); retrying in %.1fs",
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                    logger.debug("outbox relay round failure", exc_info=True)
                    await self._sleep(delay)
                    delay = min(self._backoff_max, delay * 2)
                    continue
                if loop.time() >= next_purge:
                    next_purge = loop.time() + self._purge_interval
                    await self.purge()
                if n < self._batch:
                    await self._sleep(self._poll)
        finally:
            if listener is not None:
                await listener.close()

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass

    async def _listen(self) -> Any:
        try:
            conn = await self._pool.acquire()
        except Exception:
            logger.warning("outbox relay: LISTEN unavailable, polling every %ss", self._poll)
            return None

        class _Release:
            async def close(inner) -> None:
                # After an outage the connection may be gone (and already given back to
                # the pool): there is nothing left to unlisten or release then.
                with contextlib.suppress(Exception):
                    await conn.remove_listener(CHANNEL, callback)
                with contextlib.suppress(Exception):
                    await self._pool.release(conn)

        def callback(*_: Any) -> None:
            self._wake.set()

        await conn.add_listener(CHANNEL, callback)
        return _Release()


@asynccontextmanager
async def running_relay(
    pool: Any, bootstrap_servers: str, *, stop_timeout: float = 10.0, **relay_options: Any
) -> AsyncIterator[OutboxRelay]:
    """Run an :class:`OutboxRelay` with its own :class:`EventPublisher` for the block.

    For a service's lifespan: the relay publishes the outbox while the service runs and
    is stopped (current round finished, at most ``stop_timeout`` s) when the block ends.
    ``relay_options`` go to :class:`OutboxRelay`.

    Kafka need not be up when the block starts: the service starts anyway, its events
    wait in the outbox, and the relay connects in the background (retrying after 1 s,
    backing off to 30 s) and then publishes them in order.
    """
    from tracseq_kit._exceptions import PublishError
    from tracseq_kit.events._publisher import EventPublisher

    relay = OutboxRelay(pool, EventPublisher(bootstrap_servers), **relay_options)

    async def connect_then_relay() -> None:
        delay = 1.0
        while True:
            try:
                await relay._publisher.start()
                break
            except PublishError as exc:  # PublishTimeoutError included
                logger.warning(
                    "outbox relay: cannot reach Kafka (%s); events wait in the outbox, "
                    "retrying in %.0fs",
                    exc,
                    delay,
                )
            await relay._sleep(delay)
            if relay._stopping:
                return
            delay = min(30.0, delay * 2)
            relay._publisher = EventPublisher(bootstrap_servers)  # a failed one is closed
        try:
            await relay.run()
        finally:
            await relay._publisher.stop()

    task = asyncio.create_task(connect_then_relay())
    try:
        yield relay
    finally:
        relay.stop()
        done, _ = await asyncio.wait({task}, timeout=stop_timeout)
        if not done:  # still connecting, or a round that hangs: its rows stay pending
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class _RoundFailed(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(f"{count} rows not published")
        self.count = count


class Inbox:
    """Remembers which event ids a consumer group has handled (``tracseq_inbox``).

    ``await inbox.process(event_id, effect)`` runs ``effect(conn)`` inside a transaction
    that also records the id; an id already recorded skips the effect and returns
    False. If the effect raises, nothing is recorded, so a retry runs it again.
    """

    def __init__(self, pool: Any, *, consumer: str) -> None:
        self._pool = pool
        self._consumer = consumer

    async def process(self, event_id: str, effect: Callable[[Any], Awaitable[object]]) -> bool:
        """Run ``effect(conn)`` once per event id; False if it already ran."""
        async with self._pool.acquire() as conn, conn.transaction():
            fresh = await conn.fetchval(
                """INSERT INTO tracseq_inbox (consumer, event_id) VALUES ($1, $2)
                   ON CONFLICT DO NOTHING RETURNING 1""",
                self._consumer,
                event_id,
            )
            if fresh is None:
                return False
            await effect(conn)
            return True
