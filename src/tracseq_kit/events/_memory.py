"""InMemoryBroker: a public test double for handlers, no Kafka needed."""

from __future__ import annotations

import asyncio
import re
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from tracseq_kit.events._binding import ContentMode, KafkaMessage, to_kafka
from tracseq_kit.events._cloudevent import CloudEvent

__all__ = ["InMemoryBroker", "MemoryRecord"]


class _TP(NamedTuple):
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """A stored message, shaped like aiokafka's ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int


class InMemoryBroker:
    """Topics, partitions, offsets and consumer-group commits in this process.

    Use it to test handlers without Kafka: ``EventConsumer(broker=broker, ...)`` and
    ``broker.publish(topic, event)`` behave like their Kafka counterparts (keys pick a
    partition, order holds per partition, commits are per group, retry and dead-letter
    topics work). :meth:`messages` shows what a topic holds. The same contract tests run
    against this broker and a real Kafka-protocol broker.
    """

    def __init__(self, *, partitions: int = 3) -> None:
        self.partitions = partitions
        self._logs: dict[_TP, list[MemoryRecord]] = {}
        self._commits: dict[tuple[str, _TP], int] = {}
        self._changed = asyncio.Event()

    def _log(self, tp: _TP) -> list[MemoryRecord]:
        return self._logs.setdefault(tp, [])

    def _append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> MemoryRecord:
        partition = zlib.crc32(key) % self.partitions if key is not None else 0
        log = self._log(_TP(topic, partition))
        record = MemoryRecord(
            topic, partition, len(log), key, value, tuple(headers), int(time.time() * 1000)
        )
        log.append(record)
        self._changed.set()
        return record

    async def publish(
        self, topic: str, event: CloudEvent[Any], *, mode: ContentMode = "binary"
    ) -> MemoryRecord:
        """Store ``event`` as the Kafka binding would encode it."""
        m = to_kafka(event, mode=mode)
        return self._append(topic, m.key, m.value, m.headers)

    async def publish_many(
        self, topic: str, events: Iterable[CloudEvent[Any] | KafkaMessage]
    ) -> int:
        """Store a batch (events encoded, messages as they are), like
        :meth:`EventPublisher.publish_many`; returns the count."""
        count = 0
        for item in events:
            m = item if isinstance(item, KafkaMessage) else to_kafka(item)
            self._append(topic, m.key, m.value, m.headers)
            count += 1
        return count

    async def send_message(self, topic: str, message: KafkaMessage) -> asyncio.Future[Any]:
        """The :class:`EventPublisher` method the outbox relay uses."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(self._append(topic, message.key, message.value, message.headers))
        return future

    def messages(self, topic: str) -> list[MemoryRecord]:
        """Every record of ``topic``, partition by partition."""
        return [r for tp, log in sorted(self._logs.items()) if tp.topic == topic for r in log]

    def committed(self, group: str, topic: str, partition: int) -> int | None:
        """The committed offset of ``group`` for one partition, if any."""
        return self._commits.get((group, _TP(topic, partition)))

    # -- the subset of aiokafka's consumer and producer that EventConsumer uses --

    def consumer(
        self, topics: Sequence[str], group_id: str, *, pattern: str | None = None
    ) -> _MemoryConsumer:
        """A consumer of ``topics`` (or of every topic matching ``pattern``)."""
        return _MemoryConsumer(self, list(topics), group_id, pattern)

    def producer(self) -> _MemoryProducer:
        """A producer (``send_and_wait``)."""
        return _MemoryProducer(self)


class _MemoryProducer:
    def __init__(self, broker: InMemoryBroker) -> None:
        self._broker = broker

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> MemoryRecord:
        return self._broker._append(topic, key, value, headers or [])


class _MemoryConsumer:
    def __init__(
        self, broker: InMemoryBroker, topics: list[str], group: str, pattern: str | None
    ) -> None:
        self._broker = broker
        self._topics = topics
        self._pattern = re.compile(pattern) if pattern is not None else None
        self._group = group
        self._positions: dict[_TP, int] = {}
        self._paused: set[_TP] = set()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def _assigned(self) -> list[_TP]:
        topics = self._topics
        if self._pattern is not None:
            known = {tp.topic for tp in self._broker._logs}
            # match(), like aiokafka: anchor the pattern with $ to match whole names
            topics = sorted(t for t in known if self._pattern.match(t))
        return [_TP(t, p) for t in topics for p in range(self._broker.partitions)]

    def _position(self, tp: _TP) -> int:
        if tp not in self._positions:
            self._positions[tp] = self._broker._commits.get((self._group, tp), 0)
        return self._positions[tp]

    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[_TP, list[MemoryRecord]]:
        deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
        while True:
            out: dict[_TP, list[MemoryRecord]] = {}
            for tp in self._assigned():
                if tp in self._paused:
                    continue
                log = self._broker._logs.get(tp, [])
                pos = self._position(tp)
                if pos < len(log):
                    out[tp] = log[pos : pos + (max_records or 500)]
                    self._positions[tp] = pos + len(out[tp])
            if out:
                return out
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return {}
            self._broker._changed.clear()
            try:
                await asyncio.wait_for(self._broker._changed.wait(), min(left, 0.05))
            except TimeoutError:
                pass

    async def commit(self, offsets: dict[Any, int]) -> None:
        for tp, offset in offsets.items():
            self._broker._commits[(self._group, _TP(tp.topic, tp.partition))] = int(offset)

    def pause(self, *tps: Any) -> None:
        self._paused.update(_TP(t.topic, t.partition) for t in tps)

    def resume(self, *tps: Any) -> None:
        self._paused.difference_update(_TP(t.topic, t.partition) for t in tps)

    def seek(self, tp: Any, offset: int) -> None:
        self._positions[_TP(tp.topic, tp.partition)] = offset
