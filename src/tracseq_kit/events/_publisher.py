"""EventPublisher: typed CloudEvents to Kafka on aiokafka, bounded and pipelined."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Protocol

from tracseq_kit._exceptions import (
    MissingDependencyError,
    PublishError,
    PublishTimeoutError,
)
from tracseq_kit.events._binding import ContentMode, KafkaMessage, to_kafka
from tracseq_kit.events._cloudevent import CloudEvent
from tracseq_kit.telemetry import counter
from tracseq_kit.telemetry._propagation import kafka_trace_headers

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
    :meth:`send` enqueues without waiting for the acknowledgement, so concurrent
    publishes are pipelined; :meth:`publish` waits for it; :meth:`publish_many` sends a
    batch and waits for all. The current trace context travels in the headers. With a
    ``breaker`` an open circuit fails fast with :class:`~tracseq_kit.CircuitOpenError`.
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
        **producer_options: Any,
    ) -> None:
        try:
            from aiokafka import AIOKafkaProducer
        except ImportError as exc:
            raise MissingDependencyError(
                "aiokafka", extra="kafka", purpose="EventPublisher"
            ) from exc
        options: dict[str, Any] = {"acks": "all", "enable_idempotence": True}
        options.update(producer_options)
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, **options)
        self._mode = mode
        self._timeout = timeout
        self._start_timeout = start_timeout
        self._breaker = breaker
        self._pending: set[asyncio.Task[None]] = set()
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

    async def send(
        self, topic: str, event: CloudEvent[Any], *, key: str | None = None
    ) -> asyncio.Future[Any]:
        """Enqueue ``event`` and return a future of its acknowledgement (RecordMetadata).

        The future fails with PublishError/PublishTimeoutError; awaiting it is bounded.
        """
        return await self.send_message(topic, to_kafka(event, mode=self._mode), key=key)

    async def send_message(
        self, topic: str, message: KafkaMessage, *, key: str | None = None
    ) -> asyncio.Future[Any]:
        """Like :meth:`send` for an already encoded message (used by the outbox relay)."""
        permit = await self._breaker.admit() if self._breaker is not None else None
        headers = [*message.headers, *kafka_trace_headers()]
        key_bytes = key.encode() if key is not None else message.key
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Any] = loop.create_future()
        try:
            ack = await asyncio.wait_for(
                self._producer.send(topic, message.value, key=key_bytes, headers=headers),
                self._timeout,
            )
        except BaseException as exc:
            await self._finish(topic, permit, ok=False)
            raise self._map(exc) from exc

        async def settle() -> None:
            try:
                metadata = await asyncio.wait_for(ack, self._timeout)
            except BaseException as exc:
                await self._finish(topic, permit, ok=False)
                if not result.done():
                    result.set_exception(self._map(exc))
                return
            await self._finish(topic, permit, ok=True)
            if not result.done():
                result.set_result(metadata)

        self._pending.add(loop.create_task(settle()))
        self._pending = {t for t in self._pending if not t.done()}
        return result

    async def publish(self, topic: str, event: CloudEvent[Any], *, key: str | None = None) -> Any:
        """Send ``event`` and wait for Kafka's acknowledgement; returns RecordMetadata."""
        return await (await self.send(topic, event, key=key))

    async def publish_many(self, topic: str, events: Iterable[CloudEvent[Any]]) -> list[Any]:
        """Send every event (pipelined) and wait for all acknowledgements, in order."""
        futures = [await self.send(topic, e) for e in events]
        return list(await asyncio.gather(*futures))

    async def _finish(self, topic: str, permit: Any, *, ok: bool) -> None:
        (self._published if ok else self._failed).labels(topic).inc()
        if self._breaker is not None:
            await self._breaker.record(permit, ok=ok)

    @staticmethod
    def _map(exc: BaseException) -> BaseException:
        if isinstance(exc, asyncio.CancelledError):
            return exc
        if isinstance(exc, TimeoutError):
            return PublishTimeoutError("Kafka did not acknowledge in time")
        if isinstance(exc, PublishError):
            return exc
        return PublishError(f"Kafka rejected the event: {exc}")
