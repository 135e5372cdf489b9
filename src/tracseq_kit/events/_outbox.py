"""Transactional outbox on PostgreSQL (asyncpg) and the relay that publishes it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from importlib.resources import files
from typing import Any

from tracseq_kit.db import apply_migrations
from tracseq_kit.events._binding import ContentMode, KafkaMessage, to_kafka
from tracseq_kit.events._cloudevent import CloudEvent
from tracseq_kit.telemetry._propagation import kafka_trace_headers

__all__ = ["Outbox", "OutboxRelay", "migrate", "running_relay"]

logger = logging.getLogger("tracseq_kit.events")

CHANNEL = "tracseq_outbox"

# Advisory locks in the two-int form (never met by the one-bigint locks of
# tracseq_kit.db's migrations), scoped to this outbox table: (its oid, hash of a key) for
# writers, (its oid, 0) for the relay's round, so services that share a database but not
# an outbox table never wait on each other.
_TABLE_OID = "'tracseq_outbox'::regclass::oid::int"
# One statement: lock every key of the batch (sorted, so two writers never wait on each
# other in a circle), then insert in the given order. The locks are taken before any id is
# drawn, so per key ids follow commit order: an uncommitted lower id cannot exist.
_KEY_BUCKETS = 256
"""Keys lock in this many buckets (1..256; 0 is the relay's lock): a transaction holds at
most this many advisory locks however many keys it writes (PostgreSQL's lock table is
small: max_locks_per_transaction x max_connections), at the price of two keys of one
bucket waiting for each other now and then."""
_INSERT = f"""
WITH locked AS MATERIALIZED (
    SELECT count(pg_advisory_xact_lock({_TABLE_OID}, b)) AS n
    FROM (SELECT DISTINCT (hashtext(k) & {_KEY_BUCKETS - 1}) + 1 AS b
          FROM unnest($2::text[]) AS k WHERE k IS NOT NULL ORDER BY b) AS keys
)
INSERT INTO tracseq_outbox (topic, key, value, headers, trace_context)
SELECT $1, t.k, t.v, t.h::jsonb, $5::jsonb
FROM locked, unnest($2::text[], $3::bytea[], $4::text[]) WITH ORDINALITY AS t(k, v, h, n)
ORDER BY t.n
RETURNING id
"""
_PENDING = """
SELECT id, topic, key, value, headers, trace_context FROM tracseq_outbox
WHERE published_at IS NULL
ORDER BY id
LIMIT $1
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

    Order per key holds whatever the writers do: each call takes a transaction-scoped
    advisory lock per key (keys hashed into 256 buckets, so a transaction writing
    thousands of keys holds at most 256 locks) before drawing ids, so a second
    transaction writing the same key waits until the first one commits or rolls back.
    Keep transactions that write events short, and write several keys in one
    :meth:`add_many` (it locks them in a fixed order) rather than in calls whose key
    order differs between transactions: otherwise PostgreSQL may detect a deadlock and
    abort one of them.
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
        in order. Order per key is the order given. Waits while another open
        transaction holds one of the keys (see the class docstring)."""
        trace = json.dumps({k: v.decode("latin-1") for k, v in kafka_trace_headers()})
        keys: list[str | None] = []
        values: list[bytes | None] = []
        headers: list[str] = []
        for event in events:
            message = to_kafka(event, mode=self._mode)
            keys.append(key if key is not None else (message.key.decode() if message.key else None))
            values.append(message.value)
            headers.append(json.dumps([[k, v.decode("latin-1")] for k, v in message.headers]))
        rows = await conn.fetch(_INSERT, topic, keys, values, headers, trace)
        await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
        return sorted(r["id"] for r in rows)


class OutboxRelay:
    """Publishes pending outbox rows to Kafka, in id order per key, and marks them.

    Woken by ``LISTEN tracseq_outbox`` (the NOTIFY of :meth:`Outbox.add`), with polling
    every ``poll_interval`` seconds as fallback. A round takes the relay lock (a
    transaction-scoped advisory lock: while one relay publishes, another relay's round
    returns 0 at once, so several service instances never interleave a key), reads the
    first ``batch_size`` pending rows in id order, publishes each topic's rows with one
    :meth:`EventPublisher.publish_many` (record batches per partition, one wait) and
    marks them published in the same transaction. Since :class:`Outbox` serialises the
    writers of a key, the pending rows of a key are always visible in id order.

    When Kafka does not acknowledge a topic's rows, they stay pending (``attempts``,
    ``last_error``) and the next rounds retry them with exponential backoff
    (``backoff``); nothing is lost. A record Kafka refuses for good (say, too large)
    makes the round fall back to one message at a time for that topic, so only that
    row's key waits. A crash between publishing and marking publishes rows again:
    consumers dedupe by ``(source, id)`` (:class:`Inbox`). Published rows are deleted
    at once, unless ``retention`` is set: then they are marked ``published_at`` (to be
    inspected) and purged every ``purge_interval`` s once older than ``retention``.
    """

    def __init__(
        self,
        pool: Any,
        publisher: Any,
        *,
        batch_size: int = 5000,
        poll_interval: float = 1.0,
        backoff: tuple[float, float] = (0.1, 10.0),
        retention: timedelta = timedelta(0),
        purge_interval: float = 300.0,
        publish_timeout: float = 30.0,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._batch = batch_size
        self._poll = poll_interval
        self._backoff_min, self._backoff_max = backoff
        self._retention = retention
        # Deleting a published row costs a fifth of marking it (no index entries).
        self._mark = (
            "UPDATE tracseq_outbox SET published_at = now() WHERE id = ANY($1::bigint[])"
            if retention > timedelta(0)
            else "DELETE FROM tracseq_outbox WHERE id = ANY($1::bigint[])"
        )
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
        """Publish one round; returns how many rows were published (0 when another
        relay holds the round). Kafka failures leave the rows pending and raise a
        private error that :meth:`run` turns into a backoff."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(f"SELECT pg_try_advisory_xact_lock({_TABLE_OID}, 0)"):
                return 0
            rows = await conn.fetch(_PENDING, self._batch)
            if not rows:
                return 0
            by_topic: dict[str, list[Any]] = {}
            for row in rows:
                by_topic.setdefault(row["topic"], []).append(row)
            outcomes = await asyncio.gather(
                *(self._publish_topic(topic, batch) for topic, batch in by_topic.items())
            )
            done = [row_id for ok, _ in outcomes for row_id in ok]
            failed = {row_id: why for _, bad in outcomes for row_id, why in bad.items()}
            if done:
                await conn.execute(self._mark, done)
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

    async def _publish_topic(self, topic: str, rows: list[Any]) -> tuple[list[int], dict[int, str]]:
        """Publish one topic's rows of a round: (published ids, failed id -> error)."""
        messages = [_message(row) for row in rows]
        try:
            # The send span links to the writers' contexts that the messages carry.
            await self._publisher.publish_many(topic, messages)
        except Exception as exc:
            if getattr(exc, "retriable", True):
                return [], {row["id"]: repr(exc) for row in rows}
            logger.warning("outbox relay: %s refused %r; one message at a time", topic, exc)
            return await self._publish_one_by_one(rows, messages)
        return [row["id"] for row in rows], {}

    async def _publish_one_by_one(
        self, rows: list[Any], messages: list[KafkaMessage]
    ) -> tuple[list[int], dict[int, str]]:
        """The slow path: a future per row, so only the keys of refused rows wait."""
        sent: list[tuple[Any, asyncio.Future[Any] | BaseException]] = []
        for row, message in zip(rows, messages, strict=True):
            try:
                sent.append((row, await self._publisher.send_message(row["topic"], message)))
            except Exception as exc:
                sent.append((row, exc))
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
        return done, failed

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


def _message(row: Any) -> KafkaMessage:
    """An outbox row as the message to send, with its writer's trace context."""
    headers = [(k, v.encode("latin-1")) for k, v in json.loads(row["headers"])]
    trace = row["trace_context"]
    if trace != "{}":
        headers.extend((k, v.encode("latin-1")) for k, v in json.loads(trace).items())
    key = row["key"]
    return KafkaMessage(key.encode() if key is not None else None, row["value"], headers)


class _RoundFailed(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(f"{count} rows not published")
        self.count = count
