"""DeadLetters: list, inspect and re-drive the messages of a dead-letter topic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from tracseq_kit._exceptions import (
    ConfigurationError,
    DeadLetterNotFoundError,
    MissingDependencyError,
    PublishError,
)
from tracseq_kit.events._consumer import (
    ATTEMPT,
    DLT_HEADERS,
    ERROR,
    NOT_BEFORE,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TOPIC,
)
from tracseq_kit.events._memory import InMemoryBroker

__all__ = ["REDRIVEN_FROM", "DeadLetter", "DeadLetters"]

REDRIVEN_FROM = "tracseq-redriven-from"
"""Header of a re-driven message: ``<dead-letter topic>/<partition>/<offset>``."""
_DROPPED = frozenset((*DLT_HEADERS, NOT_BEFORE, REDRIVEN_FROM))


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message of a dead-letter topic and why it is there.

    ``topic``/``partition``/``offset`` locate it in the dead-letter topic;
    ``original_*`` say where it was consumed from (see ``DLT_HEADERS``), ``error``
    what the handler raised, ``attempts`` how many times it was tried. ``event_id``,
    ``event_source`` and ``event_type`` come from the CloudEvent when it is one.
    """

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    original_topic: str
    original_partition: int | None
    original_offset: int | None
    error: str
    attempts: int
    event_id: str | None
    event_source: str | None
    event_type: str | None

    @classmethod
    def from_record(cls, record: Any) -> DeadLetter:
        """Read a consumer record (aiokafka's, or an InMemoryBroker one)."""
        headers = tuple((k, bytes(v)) for k, v in (record.headers or ()))
        named = {k: v.decode("utf-8", "replace") for k, v in headers}
        ce = _cloudevent_ids(named, record.value)
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            timestamp=record.timestamp,
            key=record.key,
            value=record.value,
            headers=headers,
            original_topic=named.get(ORIGINAL_TOPIC) or record.topic.removesuffix(".dlt"),
            original_partition=_int(named.get(ORIGINAL_PARTITION)),
            original_offset=_int(named.get(ORIGINAL_OFFSET)),
            error=named.get(ERROR, ""),
            attempts=_int(named.get(ATTEMPT)) or 0,
            event_id=ce.get("id"),
            event_source=ce.get("source"),
            event_type=ce.get("type"),
        )

    def redrive_headers(self) -> list[tuple[str, bytes]]:
        """The headers a re-driven copy carries: the original ones (trace context
        included), without the dead-letter headers, plus :data:`REDRIVEN_FROM`."""
        kept = [(k, v) for k, v in self.headers if k not in _DROPPED]
        return [*kept, (REDRIVEN_FROM, f"{self.topic}/{self.partition}/{self.offset}".encode())]


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _cloudevent_ids(headers: dict[str, str], value: bytes | None) -> dict[str, str]:
    found = {k[3:]: v for k, v in headers.items() if k in ("ce_id", "ce_source", "ce_type")}
    if found or not value or not value.startswith(b"{"):
        return found
    try:
        doc = json.loads(value)  # structured mode
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    return {k: str(doc[k]) for k in ("id", "source", "type") if isinstance(doc.get(k), str)}


_Letters = list[DeadLetter]  # ("list" is a method name below)
_Records = list[Any]


class DeadLetters:
    """The messages of dead-letter topics (``<topic>.dlt``), to inspect and re-drive.

    ``async with DeadLetters(bootstrap_servers) as dlq:`` — or
    ``DeadLetters(broker=InMemoryBroker())`` in tests. :meth:`list` reads a dead-letter
    topic from the position of the re-drive consumer group (``redrive_group``; the
    beginning at first) to its end; :meth:`get` reads one message; :meth:`redrive`
    publishes one back to its original topic (without the dead-letter headers, so it is
    a first attempt again); :meth:`redrive_all` re-drives every listed message in order
    and then moves the group's position past them, so they are not listed again. A
    message re-driven alone stays listed until :meth:`redrive_all` passes it:
    re-driving it twice is harmless to consumers with an :class:`Inbox`.

    Every call is bounded by ``timeout`` seconds; Kafka errors are raised as
    :class:`~tracseq_kit.PublishError` (re-driving) or propagate from aiokafka
    (reading). aiokafka client options pass through ``client_options``.
    """

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        *,
        broker: InMemoryBroker | None = None,
        redrive_group: str = "tracseq-dlt-redrive",
        timeout: float = 10.0,
        **client_options: Any,
    ) -> None:
        if (bootstrap_servers is None) == (broker is None):
            raise ConfigurationError("pass exactly one of bootstrap_servers= or broker=")
        self._bootstrap = bootstrap_servers
        self._broker = broker
        self._group = redrive_group
        self._timeout = timeout
        self._options = client_options
        self._producer: Any = None

    async def __aenter__(self) -> DeadLetters:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect the producer that re-drives (nothing to do for an InMemoryBroker)."""
        if self._broker is not None or self._producer is not None:
            return
        try:
            from aiokafka import AIOKafkaProducer
        except ImportError as exc:
            raise MissingDependencyError("aiokafka", extra="kafka", purpose="DeadLetters") from exc
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, acks="all", enable_idempotence=True, **self._options
        )
        await asyncio.wait_for(producer.start(), self._timeout)
        self._producer = producer

    async def stop(self) -> None:
        """Disconnect."""
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await asyncio.wait_for(producer.stop(), self._timeout)

    # -- reading --------------------------------------------------------------------------

    async def list(
        self, topic: str, *, limit: int | None = None, include_redriven: bool = False
    ) -> _Letters:
        """The messages of dead-letter ``topic`` not yet passed by :meth:`redrive_all`
        (all of them with ``include_redriven``), in partition then offset order, at most
        ``limit``."""
        if self._broker is not None:
            records = [
                r
                for r in self._broker.messages(topic)
                if include_redriven or r.offset >= (self._memory_position(topic, r.partition))
            ]
            return [DeadLetter.from_record(r) for r in records[:limit]]
        records = await self._read(topic, from_committed=not include_redriven, limit=limit)
        return [DeadLetter.from_record(r) for r in records]

    async def get(self, topic: str, partition: int, offset: int) -> DeadLetter:
        """The message at ``offset`` of ``partition`` of dead-letter ``topic``. Raises
        :class:`~tracseq_kit.DeadLetterNotFoundError` if there is none."""
        if self._broker is not None:
            for record in self._broker.messages(topic):
                if record.partition == partition and record.offset == offset:
                    return DeadLetter.from_record(record)
        else:
            records = await self._read(
                topic, partitions=[partition], start=offset, limit=1, from_committed=False
            )
            if records and records[0].offset == offset:
                return DeadLetter.from_record(records[0])
        raise DeadLetterNotFoundError(f"no dead letter at {topic}/{partition}/{offset}")

    def _memory_position(self, topic: str, partition: int) -> int:
        assert self._broker is not None
        return self._broker.committed(self._group, topic, partition) or 0

    async def _read(
        self,
        topic: str,
        *,
        from_committed: bool,
        partitions: Sequence[int] | None = None,
        start: int | None = None,
        limit: int | None = None,
    ) -> _Records:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self._options,
        )
        await asyncio.wait_for(consumer.start(), self._timeout)
        try:
            async with asyncio.timeout(self._timeout):
                # The consumer's own metadata covers subscribed topics only; this asks
                # for every topic without creating the one asked about.
                metadata = await consumer._client.fetch_all_metadata()
                numbers = sorted(metadata.partitions_for_topic(topic) or ())
                wanted = [p for p in numbers if partitions is None or p in partitions]
                tps = [TopicPartition(topic, p) for p in wanted]
                if not tps:
                    return []
                consumer.assign(tps)
                ends = await consumer.end_offsets(tps)
                for tp in tps:
                    if start is not None:
                        consumer.seek(tp, start)
                    elif from_committed:
                        consumer.seek(tp, await consumer.committed(tp) or 0)
                    else:
                        await consumer.seek_to_beginning(tp)
                out: _Records = []
                left = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
                while left and (limit is None or len(out) < limit):
                    batch = await consumer.getmany(*left, timeout_ms=200)
                    for tp, records in batch.items():
                        out.extend(r for r in records if r.offset < ends[tp])
                    left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
                out.sort(key=lambda r: (r.partition, r.offset))
                return out[:limit] if limit is not None else out
        finally:
            await consumer.stop()

    # -- re-driving -----------------------------------------------------------------------

    async def redrive(self, letter: DeadLetter) -> None:
        """Publish ``letter`` again to its original topic, with its key and value and
        without the dead-letter headers; waits for Kafka's acknowledgement."""
        await self._send(letter)

    async def redrive_all(self, topic: str) -> int:
        """Re-drive every message :meth:`list` shows for ``topic``, in order, then move
        the re-drive group's position past them; returns how many. If a send fails,
        nothing of this call is marked: calling again re-drives from the same place."""
        letters = await self.list(topic)
        for letter in letters:
            await self._send(letter)
        if not letters:
            return 0
        ends: dict[int, int] = {}
        for letter in letters:
            ends[letter.partition] = max(ends.get(letter.partition, 0), letter.offset + 1)
        if self._broker is not None:
            consumer = self._broker.consumer([topic], self._group)
            await consumer.commit({_Partition(topic, p): o for p, o in ends.items()})
            return len(letters)
        from aiokafka import AIOKafkaConsumer, TopicPartition

        committer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group,
            enable_auto_commit=False,
            **self._options,
        )
        await asyncio.wait_for(committer.start(), self._timeout)
        try:
            tps = {TopicPartition(topic, p): o for p, o in ends.items()}
            committer.assign(list(tps))
            await asyncio.wait_for(committer.commit(tps), self._timeout)
        finally:
            await committer.stop()
        return len(letters)

    async def _send(self, letter: DeadLetter) -> None:
        headers = letter.redrive_headers()
        if self._broker is not None:
            self._broker._append(letter.original_topic, letter.key, letter.value, headers)
            return
        if self._producer is None:
            await self.start()
        try:
            await asyncio.wait_for(
                self._producer.send_and_wait(
                    letter.original_topic, letter.value, key=letter.key, headers=headers
                ),
                self._timeout,
            )
        except Exception as exc:
            raise PublishError(
                f"re-driving {letter.topic}/{letter.partition}/{letter.offset} to "
                f"{letter.original_topic} failed: {exc!r}"
            ) from exc


@dataclass(frozen=True, slots=True)
class _Partition:
    topic: str
    partition: int
