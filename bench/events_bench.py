"""Publishing throughput against one Kafka-protocol broker, side by side in one run.

    python bench/events_bench.py [--events 5000] [--postgres-dsn DSN] [--bootstrap HOST:PORT]
                                 [--writers 16]

Without --bootstrap an embedded broker (librdkafka's mock cluster) is started. Targets:
raw aiokafka (pipelined sends of the same payload, serialised inside the timing, acks=all,
idempotent), FastStream's ``broker.publish``
(awaited one by one, its usual use), the kit's EventPublisher (typed CloudEvents,
pipelined), and — with --postgres-dsn — the outbox: ``add_many`` of N rows in one
transaction, then events/s from that commit until the relay has every one acknowledged
(and deleted); and the cost of the outbox's per-key writer lock: --writers concurrent
transactions of one event each, with ``Outbox.add`` as shipped and with the same insert
without the lock, on distinct keys and on one hot key.
Rounds interleave; the best of each is kept. Peers come from the ``bench`` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from pydantic import BaseModel

from tracseq_kit.events import CloudEvent, EventPublisher, Outbox, OutboxRelay, migrate


class SampleReceived(BaseModel):
    sample_id: str
    volume_ul: float


def events(n: int) -> list[CloudEvent[SampleReceived]]:
    return [
        CloudEvent[SampleReceived](
            source="/bench",
            type="tracseq.sample.received",
            subject=f"s-{i % 64}",
            data=SampleReceived(sample_id=f"s-{i}", volume_ul=12.5),
        )
        for i in range(n)
    ]


@contextlib.asynccontextmanager
async def broker(bootstrap: str | None) -> AsyncIterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from tracseq_kit.local import EmbeddedKafka

    async with EmbeddedKafka() as kafka:
        yield kafka.url


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument("--postgres-dsn", default=None)
    parser.add_argument("--writers", type=int, default=16)
    args = parser.parse_args()
    n = args.events
    batch = events(n)
    payloads = [json.dumps(e.data_json()).encode() for e in batch]
    run = uuid.uuid4().hex[:6]

    async with broker(args.bootstrap) as bootstrap:
        from aiokafka import AIOKafkaProducer
        from faststream.kafka import KafkaBroker

        raw = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
        await raw.start()
        kit = EventPublisher(bootstrap)
        await kit.start()
        fs = KafkaBroker(bootstrap)
        await fs.start()
        pool = None
        if args.postgres_dsn:
            admin = await asyncpg.connect(args.postgres_dsn)
            await admin.execute(f'CREATE SCHEMA "bench_events_{run}"')
            await admin.close()
            pool = await asyncpg.create_pool(
                args.postgres_dsn,
                min_size=2,
                max_size=args.writers + 2,
                server_settings={"search_path": f"bench_events_{run}"},
            )
            async with pool.acquire() as conn:
                await migrate(conn)

        async def raw_aiokafka() -> None:
            # The same payload bytes the kit sends as data (serialised here, as any
            # producer must), without the CloudEvents attributes.
            futures = [
                await raw.send(
                    f"bench-raw-{run}",
                    e.data.model_dump_json().encode(),  # type: ignore[union-attr]
                    key=e.subject.encode(),  # type: ignore[union-attr]
                )
                for e in batch
            ]
            await asyncio.gather(*futures)

        async def kit_publisher() -> None:
            await kit.publish_many(f"bench-kit-{run}", batch)

        async def faststream_publish() -> None:
            for p, e in zip(payloads[: n // 5], batch, strict=False):
                await fs.publish(p, topic=f"bench-fs-{run}", key=e.subject.encode())  # type: ignore[union-attr]

        relayed: list[float] = []

        async def outbox_add_many() -> float:
            assert pool is not None
            started = time.perf_counter()
            async with pool.acquire() as conn, conn.transaction():
                await Outbox().add_many(conn, f"bench-outbox-{run}", batch)
            committed = time.perf_counter()
            relay = OutboxRelay(pool, kit)
            while await relay.run_once():
                pass
            relayed.append(time.perf_counter() - committed)
            return committed - started

        async def outbox_relay() -> float:
            return relayed.pop()  # measured by the round of outbox_add_many just before

        targets: dict[str, tuple[Callable[[], Awaitable[float | None]], int]] = {
            "raw aiokafka (pipelined)": (raw_aiokafka, n),
            "tracseq-kit EventPublisher": (kit_publisher, n),
            "FastStream publish (awaited)": (faststream_publish, n // 5),
        }
        if pool is not None:
            targets["tracseq-kit outbox add_many (1 INSERT)"] = (outbox_add_many, n)
            targets["tracseq-kit outbox relay (commit -> acked)"] = (outbox_relay, n)
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, (fn, count) in targets.items():
                start = time.perf_counter()
                took = await fn()
                elapsed = took if took is not None else time.perf_counter() - start
                best[name] = max(best.get(name, 0.0), count / elapsed)
        locks = await writer_lock_cost(pool, args.writers) if pool is not None else None
        await raw.stop()
        await kit.stop()
        await fs.stop()
        if pool is not None:
            await pool.close()
            admin = await asyncpg.connect(args.postgres_dsn)
            await admin.execute(f'DROP SCHEMA "bench_events_{run}" CASCADE')
            await admin.close()

    base = best["raw aiokafka (pipelined)"]
    print(f"{n} events per round, best of {args.rounds} (FastStream: {n // 5} per round)")
    print(f"  {'target':40} {'events/s':>10} {'vs raw aiokafka':>16}")
    for name, rate in best.items():
        print(f"  {name:40} {rate:10,.0f} {rate / base:15.2f}x")
    if locks is not None:
        print(f"outbox writers: {args.writers} concurrent transactions of one event each")
        print(f"  {'keys':10} {'with key lock':>14} {'without':>10} {'ratio':>7}")
        for keys, (locked, free) in locks.items():
            print(f"  {keys:10} {locked:12,.0f}/s {free:8,.0f}/s {locked / free:6.2f}x")


async def writer_lock_cost(pool: Any, writers: int, seconds: float = 3.0) -> dict[str, Any]:
    """Transactions/s of concurrent single-event writers, with and without the lock."""
    from tracseq_kit.events import _outbox

    shipped = _outbox._INSERT
    # The statement as it was before the key lock: the same insert, no lock taken.
    unlocked = shipped[shipped.index("INSERT INTO") :].replace("FROM locked, ", "FROM ")
    results: dict[str, Any] = {}
    for keys in ("distinct", "one hot key"):
        rates = []
        for statement in (shipped, unlocked):
            _outbox._INSERT = statement
            done = 0
            stop = time.perf_counter() + seconds

            async def writer(w: int, hot: bool, stop: float) -> None:
                nonlocal done
                outbox = Outbox()
                key = "hot" if hot else f"k{w}"
                while time.perf_counter() < stop:
                    event = CloudEvent[Any](source="/bench", type="t", subject=key, data={"w": w})
                    async with pool.acquire() as conn, conn.transaction():
                        await outbox.add(conn, "bench-writers", event)
                    done += 1

            started = time.perf_counter()
            hot = keys == "one hot key"
            await asyncio.gather(*(writer(w, hot, stop) for w in range(writers)))
            rates.append(done / (time.perf_counter() - started))
        _outbox._INSERT = shipped
        results[keys] = tuple(rates)
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE tracseq_outbox")
    return results


if __name__ == "__main__":
    asyncio.run(main())
