"""EventPublisher: typed CloudEvents to Kafka on aiokafka, bounded and pipelined."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, Protocol

from opentelemetry.trace import SpanContext, TracerProvider

from tracseq_kit._exceptions import (
    MissingDependencyError,
    PublishError,
    PublishTimeoutError,
)
from tracseq_kit.events._binding import ContentMode, KafkaMessage, to_kafka
from tracseq_kit.events._cloudevent import CloudEvent
from tracseq_kit.events._tracing import (
    OFFSET,
    PARTITION,
    producer_span,
    span_context_of,
    tracer_for,
)
from tracseq_kit.telemetry import counter
from tracseq_kit.telemetry._propagation import extract_kafka_context, kafka_trace_headers

__all__ = ["EventPublisher", "PublishGuard"]

logger = logging.getLogger("tracseq_kit.events")


class PublishGuard(Protocol):
    """What the publisher needs from a circuit breaker
    (:class:`tracseq_kit.resilience.CircuitBreaker` is one)."""

    async def admit(self) -> Any:
        """Return a permit or raise CircuitOpenError."""
        ...

    async def record(self, permit: Any, *, ok: bool) -> None:
        """Count the outcome of an admitted publish."""
        ...


class EventPublisher:
    """Publishes CloudEvents to Kafka through an idempotent aiokafka producer.

    Defaults: ``acks="all"`` and ``enable_idempotence=True``; any other aiokafka
    ``AIOKafkaProducer`` option passes through ``producer_options`` unchanged.
    Every await is bounded: ``start`` by ``start_timeout``, each publish by ``timeout``
    (a dead broker raises :class:`~tracseq_kit.PublishTimeoutError`, never hangs).
    :meth:`publish` waits for one acknowledgement (concurrent calls are pipelined);
    :meth:`publish_many` builds per-partition record batches and waits for all of them.
    Publishing happens in ``send <topic>`` PRODUCER spans (OpenTelemetry messaging
    conventions; ``tracer_provider`` defaults to the global one) whose context travels
    in the headers. With a ``breaker`` an open circuit
    fails fast with :class:`~tracseq_kit.CircuitOpenError`.
    Kafka errors are raised as :class:`~tracseq_kit.PublishError`.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        mode: ContentMode = "binary",
        timeout: float = 10.0,
        start_timeout: float = 15.0,
        breaker: PublishGuard | None = None,
        tracer_provider: TracerProvider | None = None,
        **producer_options: Any,
    ) -> None:
        try:
            from aiokafka import AIOKafkaProducer
        except ImportError as exc:
            raise MissingDependencyError(
                "aiokafka", extra="kafka", purpose="EventPublisher"
            ) from exc
        # request_timeout_ms also bounds how long send() may wait for buffer space, so
        # enqueueing needs no timer of its own on the hot path.
        options: dict[str, Any] = {
            "acks": "all",
            "enable_idempotence": True,
            "request_timeout_ms": int(timeout * 1000),
        }
        options.update(producer_options)
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, **options)
        from aiokafka.partitioner import DefaultPartitioner

        # publish_many places records itself, so it must choose partitions exactly as the
        # producer would for a single send.
        self._partitioner = options.get("partitioner") or DefaultPartitioner()
        self._mode = mode
        self._timeout = timeout
        self._start_timeout = start_timeout
        self._breaker = breaker
        self._tracer = tracer_for(tracer_provider)
        self._pending: set[asyncio.Task[None]] = set()
        self._ok_by_topic: dict[str, Any] = {}
        self._failed_by_topic: dict[str, Any] = {}
        self._published = counter(
            "tracseq_events_published", "Events acknowledged by Kafka", labelnames=["topic"]
        )
        self._failed = counter(
            "tracseq_events_publish_failed",
            "Events Kafka did not acknowledge",
            labelnames=["topic"],
        )

    async def start(self) -> None:
        """Connect; raises PublishTimeoutError/PublishError if the cluster is unreachable."""
        try:
            await asyncio.wait_for(self._producer.start(), self._start_timeout)
        except TimeoutError as exc:
            await self._stop_quietly()
            raise PublishTimeoutError(
                f"Kafka did not answer within {self._start_timeout}s"
            ) from exc
        except Exception as exc:
            await self._stop_quietly()
            raise PublishError(f"could not connect to Kafka: {exc}") from exc

    async def stop(self) -> None:
        """Flush what was sent and disconnect (bounded by ``timeout``)."""
        try:
            await asyncio.wait_for(self._producer.stop(), self._timeout)
        except TimeoutError:
            logger.warning("Kafka producer did not stop within %ss", self._timeout)

    async def _stop_quietly(self) -> None:
        try:
            await asyncio.wait_for(self._producer.stop(), 1.0)
        except Exception:
            pass

    async def __aenter__(self) -> EventPublisher:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def send_message(
        self, topic: str, message: KafkaMessage, *, key: str | None = None
    ) -> asyncio.Future[Any]:
        """Enqueue an encoded message; return aiokafka's future of its acknowledgement.

        The low-level path the outbox relay uses: awaiting the returned future raises
        aiokafka's own errors. :meth:`publish` and :meth:`publish_many` wait for it
        with the timeout and raise the kit's errors instead. Enqueueing waits only when
        the producer's buffer is full, bounded by ``request_timeout_ms``.
        """
        permit = None
        if self._breaker is not None:
            permit = await self._breaker.admit()
        trace = kafka_trace_headers()
        headers = message.headers + trace if trace else message.headers
        try:
            ack: asyncio.Future[Any] = await self._producer.send(
                topic,
                message.value,
                key=key.encode() if key is not None else message.key,
                headers=headers,
            )
        except BaseException as exc:
            self._count(topic, failed=1)
            if self._breaker is not None:
                await self._breaker.record(permit, ok=False)
            raise self._map(exc) from exc
        if self._breaker is not None:
            # Only with a breaker: each outcome must reach it (a callback, not a task).
            ack.add_done_callback(lambda done: self._record(permit, done))
        return ack

    async def publish(self, topic: str, event: CloudEvent[Any], *, key: str | None = None) -> Any:
        """Send ``event`` and wait for Kafka's acknowledgement; returns RecordMetadata.

        Inside a ``send <topic>`` PRODUCER span (whose context the message carries) with
        the partition and offset Kafka assigned.
        """
        message = to_kafka(event, mode=self._mode)
        with producer_span(self._tracer, topic, [message]) as span:
            ack = await self.send_message(topic, message, key=key)
            (metadata,) = await self._acknowledged(topic, [ack])
            span.set_attribute(PARTITION, str(metadata.partition))
            span.set_attribute(OFFSET, metadata.offset)
        return metadata

    async def publish_many(
        self, topic: str, events: Iterable[CloudEvent[Any] | KafkaMessage]
    ) -> int:
        """Publish a batch and wait until Kafka acknowledged all of it; returns the count.

        Events are grouped per partition (chosen by key with the producer's partitioner,
        as :meth:`publish` would) into aiokafka record batches, so a large batch costs
        no per-message futures; order per key is kept. Items that are already encoded
        (:class:`KafkaMessage`, what the outbox relay sends) go out as they are, their
        headers included. One ``send <topic>`` PRODUCER span covers the call; encoded
        messages that carry a trace context are linked to it. One permit of the breaker
        covers the call. Raises like :meth:`publish`; nothing tells which part of a
        failed batch Kafka kept, so a retry may duplicate some of it.
        """
        items = events if isinstance(events, list | tuple) else list(events)
        links = [c for c in (_carried(i) for i in items[:_MAX_LINKS]) if c is not None]
        permit = await self._breaker.admit() if self._breaker is not None else None
        ok = False
        try:
            with producer_span(self._tracer, topic, items, links=links):
                count = await self._publish_batches(topic, items)
            ok = True
            return count
        finally:
            if self._breaker is not None:
                await self._breaker.record(permit, ok=ok)

    async def _publish_batches(
        self, topic: str, events: Sequence[CloudEvent[Any] | KafkaMessage]
    ) -> int:
        producer = self._producer
        trace = kafka_trace_headers()
        mode = self._mode
        try:
            async with asyncio.timeout(self._timeout):
                partitions = sorted(await producer.partitions_for(topic))
                builders: dict[int, Any] = {}
                acks: list[asyncio.Future[Any]] = []
                count = 0
                for event in events:
                    if isinstance(event, KafkaMessage):
                        m, headers = event, event.headers
                    else:
                        m = to_kafka(event, mode=mode)
                        headers = m.headers + trace if trace else m.headers
                    partition = self._partitioner(m.key, partitions, partitions)
                    batch = builders.get(partition)
                    if batch is None:
                        batch = builders[partition] = producer.create_batch()
                    if (
                        batch.append(key=m.key, value=m.value, headers=headers, timestamp=None)
                        is None
                    ):
                        if batch.record_count():
                            acks.append(
                                await producer.send_batch(batch, topic, partition=partition)
                            )
                        batch = builders[partition] = producer.create_batch()
                        if (
                            batch.append(key=m.key, value=m.value, headers=headers, timestamp=None)
                            is None
                        ):  # bigger than a batch: aiokafka's own path sizes it
                            acks.append(
                                await producer.send(
                                    topic,
                                    m.value,
                                    key=m.key,
                                    headers=headers,
                                    partition=partition,
                                )
                            )
                    count += 1
                for partition, batch in builders.items():
                    if batch.record_count():
                        acks.append(await producer.send_batch(batch, topic, partition=partition))
                await asyncio.gather(*acks)
        except TimeoutError as exc:
            self._count(topic, failed=1)
            raise PublishTimeoutError(f"Kafka did not acknowledge within {self._timeout}s") from exc
        except Exception as exc:
            self._count(topic, failed=1)
            raise self._map(exc) from exc
        self._count(topic, published=count)
        return count

    async def _acknowledged(self, topic: str, acks: list[asyncio.Future[Any]]) -> list[Any]:
        try:
            async with asyncio.timeout(self._timeout):
                results = list(await asyncio.gather(*acks))
        except TimeoutError as exc:
            self._count(topic, failed=sum(1 for a in acks if not a.done() or a.exception()))
            raise PublishTimeoutError(f"Kafka did not acknowledge within {self._timeout}s") from exc
        except Exception as exc:
            self._count(topic, failed=sum(1 for a in acks if a.done() and a.exception()))
            raise self._map(exc) from exc
        self._count(topic, published=len(results))
        return results

    def _record(self, permit: Any, done: asyncio.Future[Any]) -> None:
        ok = not done.cancelled() and done.exception() is None
        assert self._breaker is not None
        task = asyncio.get_running_loop().create_task(self._breaker.record(permit, ok=ok))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _count(self, topic: str, *, published: int = 0, failed: int = 0) -> None:
        if published:
            child = self._ok_by_topic.get(topic)
            if child is None:
                child = self._ok_by_topic[topic] = self._published.labels(topic)
            child.inc(published)
        if failed:
            child = self._failed_by_topic.get(topic)
            if child is None:
                child = self._failed_by_topic[topic] = self._failed.labels(topic)
            child.inc(failed)

    @staticmethod
    def _map(exc: BaseException) -> BaseException:
        if isinstance(exc, asyncio.CancelledError):
            return exc
        if isinstance(exc, TimeoutError):
            return PublishTimeoutError("Kafka did not acknowledge in time")
        if isinstance(exc, PublishError):
            return exc
        error = PublishError(f"Kafka rejected the event: {exc}")
        # aiokafka says whether trying again may help (a record too large: never).
        error.retriable = bool(getattr(exc, "retriable", True))
        return error


_MAX_LINKS = 128  # span links from one send span to the contexts its messages carry


def _carried(item: CloudEvent[Any] | KafkaMessage) -> SpanContext | None:
    """The trace context an encoded message carries (its writer's), if any."""
    if not isinstance(item, KafkaMessage) or item.header("traceparent") is None:
        return None
    return span_context_of(extract_kafka_context(item.headers))
