"""EventConsumer: consumer groups, at-least-once, retry topics and a dead-letter topic."""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from tracseq_kit._exceptions import (
    ConfigurationError,
    EventEncodingError,
    MissingDependencyError,
    UnknownEventTypeError,
)
from tracseq_kit.events._binding import KafkaMessage, from_kafka
from tracseq_kit.events._cloudevent import CloudEvent
from tracseq_kit.events._inbox import Inbox
from tracseq_kit.events._memory import InMemoryBroker
from tracseq_kit.events._registry import EventRegistry
from tracseq_kit.events._tracing import consumer_span, span_context_of, tracer_for
from tracseq_kit.telemetry import metrics_registry
from tracseq_kit.telemetry._propagation import extract_kafka_context

__all__ = ["DLT_HEADERS", "BatchHandler", "Delivery", "EventBatch", "EventConsumer", "Handler"]

logger = logging.getLogger("tracseq_kit.events")

ATTEMPT = "tracseq-attempt"
NOT_BEFORE = "tracseq-not-before"
ORIGINAL_TOPIC = "tracseq-original-topic"
ORIGINAL_PARTITION = "tracseq-original-partition"
ORIGINAL_OFFSET = "tracseq-original-offset"
ERROR = "tracseq-error"
DLT_HEADERS = (ORIGINAL_TOPIC, ORIGINAL_PARTITION, ORIGINAL_OFFSET, ERROR, ATTEMPT)
"""Headers a dead-lettered message carries: where it came from, why, after how many."""
_OURS = frozenset((*DLT_HEADERS, NOT_BEFORE))


@dataclass(frozen=True, slots=True)
class Delivery:
    """Where an event came from: topic, partition, offset, and which attempt this is
    (1 for the first). ``conn`` is the inbox transaction's connection, when an
    :class:`Inbox` is configured: do the handler's database effects on it."""

    topic: str
    partition: int
    offset: int
    attempt: int
    headers: Sequence[tuple[str, bytes]] = field(default_factory=tuple)
    conn: Any = None


Handler = Callable[[CloudEvent[Any], Delivery], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Consecutive events of one partition for a batch handler, in offset order.

    ``events[i]`` came with ``deliveries[i]``. With an :class:`Inbox`, events already
    handled are left out (``skipped`` counts them) and ``conn`` is the connection of the
    transaction that records the batch in the inbox: store the events on it, with one
    statement for the batch, and both commit together.
    """

    topic: str
    partition: int
    events: Sequence[CloudEvent[Any]]
    deliveries: Sequence[Delivery]
    conn: Any = None
    skipped: int = 0


BatchHandler = Callable[[EventBatch], Awaitable[object]]


class _DependencyDown(Exception):
    """A handler failed with one of ``pause_on``: pause the partition, retry in place."""

    def __init__(self, cause: BaseException, origin: str) -> None:
        super().__init__(str(cause))
        self.cause = f"{type(cause).__name__}: {cause}"
        self.origin = origin


class EventConsumer:
    """Consumes CloudEvents in a consumer group and calls ``handler`` for each.

    At least once: offsets are committed only after the handler succeeded or the
    message was handed to a retry or dead-letter topic (and Kafka acknowledged that).
    Partitions are handled concurrently, each one sequentially in offset order.

    A failing handler (or one exceeding ``handler_timeout``) does not block its
    partition: the message goes to ``<topic>.retry.<n>`` with a not-before time
    ``retry_delays[n-1]`` seconds ahead; the consumer reads those topics too and pauses
    such a partition until the message is due. After the last retry, or at once for a
    message that is not a valid CloudEvent, it goes to ``<topic>.dlt`` with the
    headers in :data:`DLT_HEADERS`.

    ``pause_on`` names the exceptions that mean a dependency is down rather than the
    message being bad (say ``OSError`` and the database driver's connection errors): the
    message is then neither retried elsewhere nor dead-lettered; its partition pauses
    and the same message is handled again after 1 s, doubling up to ``max_pause``
    seconds, for as long as the outage lasts (outcome ``paused`` in the metrics).

    With ``inbox`` the handler runs inside a transaction that records the event id, so a
    redelivered event has no second effect.

    With ``batch_handler`` instead of ``handler``, each partition's fetched records
    are handed over as one :class:`EventBatch` (invalid messages dead-lettered first),
    inside one ``inbox`` transaction when there is an inbox: the way to store events
    with one statement per batch. Fetches are gathered for up to ``batch_wait``
    seconds, until about ``batch_size`` records, as each call costs a transaction. If
    the batch handler fails, the batch's events are
    handled again one by one (each as a batch of one), so a bad event goes its own way
    through the retry and dead-letter topics while the others are stored.

    ``topic_pattern`` (a regular expression matched from the start of the name, as
    aiokafka does: end it with ``$``) subscribes to every matching topic, also ones
    created later, found at each metadata refresh (every ``topic_refresh`` seconds);
    make it match the retry topics too (``<topic>.retry.<n>``) but not the ``.dlt``
    ones. A new topic joins the assignment through a group rebalance: a real broker
    completes it once the members rejoined, but the embedded broker (librdkafka's mock
    cluster, of ``tracseq dev`` and the tests) waits the session timeout less one
    second, so against it pass ``session_timeout_ms=2500, heartbeat_interval_ms=500``
    (a real broker refuses session timeouts below its minimum, 6 s by default).

    Tracing: each event is handled in a ``process <topic>`` CONSUMER span, a child of
    the trace context the message carries (the publishing request), with the
    OpenTelemetry messaging attributes; a batch gets one span linked to its messages.
    With an inbox, :meth:`Inbox.purge_if_due` runs between fetches.

    Connect to Kafka with ``bootstrap_servers`` (aiokafka options pass through
    ``consumer_options``) or use ``broker=InMemoryBroker()`` in tests. :meth:`run`
    until :meth:`stop`: it stops fetching, lets in-flight handlers finish within
    ``shutdown_timeout``, commits, and leaves the group.

    Metrics: ``tracseq_events_consumed_total{group, topic, outcome}`` on the shared
    registry, ``topic`` the original topic and ``outcome`` one of ``handled``,
    ``retried``, ``dead_lettered`` and ``paused`` (also :attr:`handled`, :attr:`retried`,
    :attr:`dead_lettered` on the consumer).
    """

    def __init__(
        self,
        *,
        topics: Sequence[str] = (),
        topic_pattern: str | None = None,
        group_id: str,
        handler: Handler | None = None,
        batch_handler: BatchHandler | None = None,
        bootstrap_servers: str | None = None,
        broker: InMemoryBroker | None = None,
        registry: EventRegistry | None = None,
        retry_delays: Sequence[float] = (1.0, 10.0),
        pause_on: tuple[type[BaseException], ...] = (),
        max_pause: float = 30.0,
        inbox: Inbox | None = None,
        handler_timeout: float = 30.0,
        shutdown_timeout: float = 10.0,
        poll_timeout: float = 0.5,
        topic_refresh: float = 1.0,
        batch_size: int = 2000,
        batch_wait: float = 0.05,
        tracer_provider: TracerProvider | None = None,
        **consumer_options: Any,
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise ConfigurationError("pass exactly one of handler= or batch_handler=")
        if topic_refresh <= 0:
            raise ConfigurationError("topic_refresh must be > 0 seconds")
        if (bootstrap_servers is None) == (broker is None):
            raise ConfigurationError("pass exactly one of bootstrap_servers= or broker=")
        if not topics and topic_pattern is None:
            raise ConfigurationError("an event consumer needs topics= or topic_pattern=")
        if topic_pattern is not None:
            try:
                re.compile(topic_pattern)
            except re.error as exc:
                raise ConfigurationError(f"topic_pattern does not compile: {exc}") from None
        if any(d < 0 for d in retry_delays):
            raise ConfigurationError("retry delays must be >= 0")
        if max_pause <= 0:
            raise ConfigurationError("max_pause must be > 0")
        self.topics = list(topics)
        self.group_id = group_id
        self._handler = handler
        self._batch_handler = batch_handler
        self._batch_size = batch_size
        self._batch_wait = batch_wait
        self._tracer = tracer_for(tracer_provider)
        self._registry = registry
        self._delays = list(retry_delays)
        self._pause_on = pause_on
        self._max_pause = max_pause
        self._paused_for: dict[Any, float] = {}  # partition -> its current outage pause
        self._inbox = inbox
        self._handler_timeout = handler_timeout
        self._shutdown_timeout = shutdown_timeout
        self._poll_ms = int(poll_timeout * 1000)
        subscribed = [
            *self.topics,
            *(f"{t}.retry.{n}" for t in self.topics for n in range(1, len(self._delays) + 1)),
        ]
        if broker is not None:
            self._consumer: Any = broker.consumer(subscribed, group_id, pattern=topic_pattern)
            self._producer: Any = broker.producer()
        else:
            try:
                from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
            except ImportError as exc:
                raise MissingDependencyError(
                    "aiokafka", extra="kafka", purpose="EventConsumer"
                ) from exc
            options: dict[str, Any] = {"auto_offset_reset": "earliest"}
            options.update(consumer_options)
            options["enable_auto_commit"] = False
            if topic_pattern is not None:
                # New matching topics are found at each metadata refresh.
                options.setdefault("metadata_max_age_ms", int(topic_refresh * 1000))
                self._consumer = AIOKafkaConsumer(
                    bootstrap_servers=bootstrap_servers, group_id=group_id, **options
                )
                self._consumer.subscribe(pattern=topic_pattern)
            else:
                self._consumer = AIOKafkaConsumer(
                    *subscribed,
                    bootstrap_servers=bootstrap_servers,
                    group_id=group_id,
                    **options,
                )
            self._producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=True
            )
        self._stopping = False
        self._resume_at: dict[Any, float] = {}
        self.handled = 0
        self.retried = 0
        self.dead_lettered = 0
        # (original topic, outcome) -> events; read by the collector at scrape time
        self._consumed: collections.Counter[tuple[str, str]] = collections.Counter()
        _track(self)

    def stop(self) -> None:
        """Ask :meth:`run` to finish (stop fetching, drain, commit, leave)."""
        self._stopping = True

    async def run(self) -> None:
        """Consume until :meth:`stop`; raises if Kafka cannot be reached at start."""
        await asyncio.wait_for(self._producer.start(), 30)
        try:
            await asyncio.wait_for(self._consumer.start(), 30)
        except BaseException:
            await self._producer.stop()
            raise
        try:
            while not self._stopping:
                self._resume_due()
                if self._inbox is not None:
                    await self._purge_inbox()
                batch = await self._consumer.getmany(timeout_ms=self._poll_ms)
                if not batch:
                    continue
                if self._batch_handler is not None:
                    await self._gather(batch)
                tasks = [
                    asyncio.create_task(self._partition(tp, records))
                    for tp, records in batch.items()
                ]
                done, pending = await self._drain(tasks)
                for task in pending:
                    task.cancel()  # past the shutdown bound: uncommitted, redelivered later
                offsets = {}
                for task in done:
                    if not task.cancelled() and task.exception() is None:
                        tp, next_offset = task.result()
                        if next_offset is not None:
                            offsets[tp] = next_offset
                if offsets:
                    await asyncio.wait_for(self._consumer.commit(offsets), 30)
        finally:
            await self._consumer.stop()
            await self._producer.stop()

    async def _gather(self, batch: dict[Any, list[Any]]) -> None:
        """Fetch more for up to ``batch_wait`` seconds, until ``batch_size`` records: a
        broker may hand out one small record batch per partition and fetch, and each
        handler call costs a transaction."""
        total = sum(len(records) for records in batch.values())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._batch_wait
        while total < self._batch_size and not self._stopping:
            left = deadline - loop.time()
            if left <= 0:
                return
            more = await self._consumer.getmany(timeout_ms=max(1, int(left * 1000)))
            if not more:
                return
            for tp, records in more.items():
                batch.setdefault(tp, []).extend(records)
                total += len(records)

    async def _purge_inbox(self) -> None:
        assert self._inbox is not None
        try:
            await self._inbox.purge_if_due()
        except Exception as exc:  # the database is down: purging waits for the next time
            logger.warning("%s: purging the inbox failed (%s)", self.group_id, exc)

    async def _drain(
        self, tasks: list[asyncio.Task[Any]]
    ) -> tuple[set[asyncio.Task[Any]], set[asyncio.Task[Any]]]:
        """Wait for the batch; once stop() is called, for at most ``shutdown_timeout``."""
        pending: set[asyncio.Task[Any]] = set(tasks)
        while pending and not self._stopping:
            _, pending = await asyncio.wait(pending, timeout=0.1)
        if pending:
            _, pending = await asyncio.wait(pending, timeout=self._shutdown_timeout)
        return {t for t in tasks if t not in pending}, pending

    def _resume_due(self) -> None:
        now = time.time()
        due = [tp for tp, at in self._resume_at.items() if at <= now]
        for tp in due:
            del self._resume_at[tp]
        if due:
            self._consumer.resume(*due)

    async def _partition(self, tp: Any, records: Sequence[Any]) -> tuple[Any, int | None]:
        """Handle one partition's records in order; returns the offset to commit."""
        next_offset: int | None = None
        if self._batch_handler is not None:
            records, next_offset = await self._batch(tp, records)
        for record in records:
            headers = [(k, bytes(v)) for k, v in (record.headers or ())]
            hdr = dict(headers)
            not_before = _int(hdr.get(NOT_BEFORE))
            if not_before is not None and not_before > time.time() * 1000:
                # Not due yet: leave it (and what follows) for later, without blocking
                # other partitions.
                self._consumer.pause(tp)
                self._consumer.seek(tp, record.offset)
                self._resume_at[tp] = not_before / 1000
                break
            try:
                await self._one(record, headers, hdr)
            except _DependencyDown as down:
                self._pause(tp, record, down)
                break
            self._paused_for.pop(tp, None)
            next_offset = record.offset + 1
        return tp, next_offset

    async def _batch(self, tp: Any, records: Sequence[Any]) -> tuple[Sequence[Any], int | None]:
        """Batch mode: hand the due, valid records to the batch handler at once.

        Returns the records left to handle one by one (all of them when the batch
        failed, from the first not-yet-due one otherwise) and the offset to commit.
        """
        now_ms = time.time() * 1000
        events: list[CloudEvent[Any]] = []
        deliveries: list[Delivery] = []
        taken: list[Any] = []
        registry, unknown_ok = self._registry, self._registry is None
        for index, record in enumerate(records):
            headers = list(record.headers or ())  # (str, bytes) pairs already
            attempt, not_before = 1, None
            for name, _ in headers:  # ours are rare: one cheap pass to find them
                if name.startswith("tracseq-"):
                    hdr = dict(headers)
                    not_before = _int(hdr.get(NOT_BEFORE))
                    attempt = (_int(hdr.get(ATTEMPT)) or 0) + 1
                    break
            if not_before is not None and not_before > now_ms:
                rest = records[index:]
                break
            try:
                event = from_kafka(
                    KafkaMessage(record.key, record.value, headers),
                    registry,
                    allow_unknown=unknown_ok,
                )
            except (EventEncodingError, UnknownEventTypeError) as exc:
                await self._dead_letter(record, headers, _origin(record), attempt, exc)
                continue
            events.append(event)
            deliveries.append(
                Delivery(record.topic, record.partition, record.offset, attempt, headers)
            )
            taken.append(record)
        else:
            rest = ()
        done = len(records) - len(rest)  # handed over or dead-lettered
        done_offset = records[done - 1].offset + 1 if done else None
        if not taken:
            return rest, done_offset
        try:
            await asyncio.wait_for(
                self._handle_batch(tp, taken, events, deliveries), self._handler_timeout
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._pause_on and isinstance(exc, self._pause_on):
                self._pause(tp, taken[0], _DependencyDown(exc, _origin(taken[0])))
                return (), None
            logger.info("%s: a batch of %s failed (%r): one by one", self.group_id, tp, exc)
            return [*taken, *rest], None  # handled again singly: retries and dead letters
        self._paused_for.pop(tp, None)
        self.handled += len(taken)
        for origin, count in collections.Counter(map(_origin, taken)).items():
            self._consumed[origin, "handled"] += count
        return rest, done_offset

    async def _handle_batch(
        self,
        tp: Any,
        records: Sequence[Any],
        events: list[CloudEvent[Any]],
        deliveries: list[Delivery],
    ) -> None:
        assert self._batch_handler is not None
        with consumer_span(
            self._tracer, tp.topic, tp.partition, records, group=self.group_id
        ) as span:
            if span.is_recording():  # links cost a header parse each: only when traced
                for d in deliveries[:128]:
                    carried = span_context_of(extract_kafka_context(d.headers))
                    if carried is not None:
                        span.add_link(carried)
            if self._inbox is None:
                await self._batch_handler(EventBatch(tp.topic, tp.partition, events, deliveries))
                return
            async with self._inbox.pool.acquire() as conn, conn.transaction():
                fresh = await self._inbox.claim(conn, events)
                kept = [i for i, new in enumerate(fresh) if new]
                if kept:
                    await self._batch_handler(
                        EventBatch(
                            tp.topic,
                            tp.partition,
                            [events[i] for i in kept],
                            [replace(deliveries[i], conn=conn) for i in kept],
                            conn,
                            len(events) - len(kept),
                        )
                    )

    def _pause(self, tp: Any, record: Any, down: _DependencyDown) -> None:
        pause = min(self._max_pause, self._paused_for.get(tp, 0.5) * 2)
        self._paused_for[tp] = pause
        logger.warning(
            "%s: handling %s offset %s failed (%s); partition paused %.0f s",
            self.group_id,
            record.topic,
            record.offset,
            down.cause,
            pause,
        )
        self._consumed[down.origin, "paused"] += 1
        self._consumer.pause(tp)
        self._consumer.seek(tp, record.offset)
        self._resume_at[tp] = time.time() + pause

    async def _one(
        self, record: Any, headers: list[tuple[str, bytes]], hdr: dict[str, bytes]
    ) -> None:
        attempt = (_int(hdr.get(ATTEMPT)) or 0) + 1
        origin = hdr.get(ORIGINAL_TOPIC, b"").decode() or record.topic
        message = KafkaMessage(record.key, record.value, headers)
        try:
            event = from_kafka(message, self._registry, allow_unknown=self._registry is None)
        except (EventEncodingError, UnknownEventTypeError) as exc:
            await self._dead_letter(record, headers, origin, attempt, exc)
            return
        delivery = Delivery(record.topic, record.partition, record.offset, attempt, headers)
        try:
            with consumer_span(
                self._tracer,
                record.topic,
                record.partition,
                [record],
                group=self.group_id,
                parent=extract_kafka_context(headers),
            ):
                await asyncio.wait_for(self._handle(event, delivery), self._handler_timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self._pause_on and isinstance(exc, self._pause_on):
                raise _DependencyDown(exc, origin) from exc
            if attempt <= len(self._delays):
                await self._retry(record, headers, origin, attempt, exc)
            else:
                await self._dead_letter(record, headers, origin, attempt, exc)
            return
        self.handled += 1
        self._consumed[origin, "handled"] += 1

    async def _handle(self, event: CloudEvent[Any], delivery: Delivery) -> None:
        if self._handler is None:  # batch mode, one event at a time after a failed batch
            assert self._batch_handler is not None
            if self._inbox is None:
                batch = EventBatch(delivery.topic, delivery.partition, [event], [delivery])
                await self._batch_handler(batch)
                return
            async with self._inbox.pool.acquire() as conn, conn.transaction():
                (fresh,) = await self._inbox.claim(conn, [event])
                if fresh:
                    one = replace(delivery, conn=conn)
                    await self._batch_handler(
                        EventBatch(delivery.topic, delivery.partition, [event], [one], conn)
                    )
            return
        if self._inbox is None:
            await self._handler(event, delivery)
            return

        handler = self._handler

        async def effect(conn: Any) -> None:
            await handler(
                event,
                Delivery(
                    delivery.topic,
                    delivery.partition,
                    delivery.offset,
                    delivery.attempt,
                    delivery.headers,
                    conn,
                ),
            )

        await self._inbox.process(event.source, event.id, effect)

    def _forward_headers(
        self,
        record: Any,
        headers: list[tuple[str, bytes]],
        origin: str,
        attempt: int,
        exc: BaseException,
    ) -> list[tuple[str, bytes]]:
        kept = [(k, v) for k, v in headers if k not in _OURS]
        hdr = dict(headers)
        return [
            *kept,
            (ORIGINAL_TOPIC, origin.encode()),
            (ORIGINAL_PARTITION, hdr.get(ORIGINAL_PARTITION, str(record.partition).encode())),
            (ORIGINAL_OFFSET, hdr.get(ORIGINAL_OFFSET, str(record.offset).encode())),
            (ERROR, f"{type(exc).__name__}: {exc}"[:1000].encode()),
            (ATTEMPT, str(attempt).encode()),
        ]

    async def _retry(
        self,
        record: Any,
        headers: list[tuple[str, bytes]],
        origin: str,
        attempt: int,
        exc: BaseException,
    ) -> None:
        due = int((time.time() + self._delays[attempt - 1]) * 1000)
        await self._forward(
            f"{origin}.retry.{attempt}",
            record,
            headers,
            origin,
            attempt,
            exc,
            (NOT_BEFORE, str(due).encode()),
        )
        self.retried += 1
        self._consumed[origin, "retried"] += 1

    async def _dead_letter(
        self,
        record: Any,
        headers: list[tuple[str, bytes]],
        origin: str,
        attempt: int,
        exc: BaseException,
    ) -> None:
        await self._forward(f"{origin}.dlt", record, headers, origin, attempt, exc)
        self.dead_lettered += 1
        self._consumed[origin, "dead_lettered"] += 1

    async def _forward(
        self,
        topic: str,
        record: Any,
        headers: list[tuple[str, bytes]],
        origin: str,
        attempt: int,
        exc: BaseException,
        *extra: tuple[str, bytes],
    ) -> None:
        """Hand the message to a retry or dead-letter topic and wait for the ack."""
        out = [*self._forward_headers(record, headers, origin, attempt, exc), *extra]
        await asyncio.wait_for(
            self._producer.send_and_wait(topic, record.value, key=record.key, headers=out), 30
        )
        logger.warning(
            "event at %s[%s]@%s failed (attempt %s) and went to %s: %r",
            record.topic,
            record.partition,
            record.offset,
            attempt,
            topic,
            exc,
        )


def _origin(record: Any) -> str:
    for name, value in record.headers or ():
        if name == ORIGINAL_TOPIC:
            return bytes(value).decode()
    return str(record.topic)


def _int(raw: bytes | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


_consumers: weakref.WeakSet[EventConsumer] = weakref.WeakSet()
_registered: weakref.WeakSet[CollectorRegistry] = weakref.WeakSet()
_retired: collections.Counter[tuple[str, str, str]] = collections.Counter()
"""Counts of consumers that are gone (a restarted one), so the totals never go down."""


class _ConsumedCollector(Collector):
    """``tracseq_events_consumed_total`` from the consumers' plain counts, at scrape time
    (an event pays a dict increment, not a labelled metric update)."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "tracseq_events_consumed",
            "Events a consumer finished with: handled, retried, dead-lettered or paused",
            labels=["group", "topic", "outcome"],
        )
        totals = collections.Counter(_retired)
        for consumer in list(_consumers):
            for (topic, outcome), n in consumer._consumed.items():
                totals[consumer.group_id, topic, outcome] += n
        for labels, n in sorted(totals.items()):
            family.add_metric(list(labels), n)
        yield family

    def describe(self) -> Iterator[CounterMetricFamily]:
        return iter(())


def _retire(group: str, counts: collections.Counter[tuple[str, str]]) -> None:
    for (topic, outcome), n in counts.items():
        _retired[group, topic, outcome] += n


def _track(consumer: EventConsumer) -> None:
    _consumers.add(consumer)
    weakref.finalize(consumer, _retire, consumer.group_id, consumer._consumed)
    registry = metrics_registry()
    if registry not in _registered:
        registry.register(_ConsumedCollector())
        _registered.add(registry)
