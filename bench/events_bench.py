"""Publishing throughput against one Kafka-protocol broker, side by side in one run.

    python bench/events_bench.py [--events 5000] [--postgres-dsn DSN] [--bootstrap HOST:PORT]

Without --bootstrap an embedded broker (librdkafka's mock cluster) is started. Targets:
raw aiokafka (pipelined sends of the same payload, serialised inside the timing, acks=all,
idempotent), FastStream's ``broker.publish``
(awaited one by one, its usual use), the kit's EventPublisher (typed CloudEvents,
pipelined), and — with --postgres-dsn — the outbox: events/s from a committed
transaction of N outbox rows until the relay has every one acknowledged and marked.
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
            import asyncpg

            pool = await asyncpg.create_pool(args.postgres_dsn, min_size=2, max_size=4)
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

        async def outbox() -> None:
            assert pool is not None
            out = Outbox()
            async with pool.acquire() as conn, conn.transaction():
                await out.add_many(conn, f"bench-outbox-{run}", batch)
            relay = OutboxRelay(pool, kit, batch_size=500)
            while await relay.run_once():
                pass

        targets: dict[str, tuple[Callable[[], Awaitable[None]], int]] = {
            "raw aiokafka (pipelined)": (raw_aiokafka, n),
            "tracseq-kit EventPublisher": (kit_publisher, n),
            "FastStream publish (awaited)": (faststream_publish, n // 5),
        }
        if pool is not None:
            targets["tracseq-kit outbox (commit -> acked)"] = (outbox, n)
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            for name, (fn, count) in targets.items():
                start = time.perf_counter()
                await fn()
                best[name] = max(best.get(name, 0.0), count / (time.perf_counter() - start))
        await raw.stop()
        await kit.stop()
        await fs.stop()
        if pool is not None:
            async with pool.acquire() as conn:
                await conn.execute(
                    "DELETE FROM tracseq_outbox WHERE topic LIKE $1", f"bench-%{run}"
                )
            await pool.close()

    base = best["raw aiokafka (pipelined)"]
    print(f"{n} events per round, best of {args.rounds} (FastStream: {n // 5} per round)")
    print(f"  {'target':40} {'events/s':>10} {'vs raw aiokafka':>16}")
    for name, rate in best.items():
        print(f"  {name:40} {rate:10,.0f} {rate / base:15.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
