"""Baselines of the example services, in one run on real servers.

    python bench/services_bench.py --postgres-dsn postgresql://postgres@127.0.0.1:5432/test

- template creation: ``POST /api/templates`` requests/s (service on uvicorn, 16 concurrent
  httpx clients), each one a transaction with its outbox event;
- sheet validation over HTTP: rows/s for a 10,000-row CSV posted to ``/validate``;
- event ingestion: events/s from Kafka into PostgreSQL through the event service's
  consumer (N events published first, time until all are stored);
- query latency: p50/p99 of ``GET /api/events`` with filters over 100,000 stored events.

A fresh schema is created and dropped; Kafka is the embedded broker unless --bootstrap.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import socket
import statistics
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from examples.event_service.app import EventServiceSettings
from examples.event_service.app import create_app as event_service
from examples.template_service.app import TemplateServiceSettings
from examples.template_service.app import create_app as template_service

from tracseq_kit.events import CloudEvent, EventPublisher

TEMPLATE = {
    "name": "bench",
    "fields": [
        {
            "name": "sample_id",
            "type": "barcode",
            "barcode_pattern": r"S-\d{6}",
            "required": True,
            "rules": {"unique": True},
        },
        {"name": "sample_type", "type": "enum", "options": ["DNA", "RNA"], "required": True},
        {"name": "concentration", "type": "decimal", "rules": {"min_value": 0}},
    ],
}


@contextlib.contextmanager
def served(app: Any) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@contextlib.asynccontextmanager
async def kafka(bootstrap: str | None) -> AsyncIterator[str]:
    if bootstrap:
        yield bootstrap
        return
    from tracseq_kit.local import EmbeddedKafka

    async with EmbeddedKafka() as k:
        yield k.url


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgres-dsn", required=True)
    parser.add_argument("--bootstrap", default=None)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--stored", type=int, default=100_000)
    args = parser.parse_args()

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(args.postgres_dsn)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in args.postgres_dsn else "?"
    dsn = f"{args.postgres_dsn}{sep}options=-csearch_path%3D{schema}"
    results: list[str] = []
    try:
        async with kafka(args.bootstrap) as bootstrap:
            # -- template creation and validation over HTTP
            tsettings = TemplateServiceSettings(
                postgres_dsn=SecretStr(dsn), max_body_bytes=50 << 20
            )
            with served(template_service(tsettings)) as base:
                async with httpx.AsyncClient(base_url=base, timeout=60) as c:
                    start = time.perf_counter()

                    async def creator(n: int) -> None:
                        for _ in range(n):
                            r = await c.post("/api/templates", json=TEMPLATE)
                            assert r.status_code == 201, r.text

                    await asyncio.gather(*(creator(args.creates // 16) for _ in range(16)))
                    rate = (args.creates // 16 * 16) / (time.perf_counter() - start)
                    results.append(f"template creation (HTTP, 16 clients)   {rate:10,.0f} req/s")
                    tid = (await c.post("/api/templates", json=TEMPLATE)).json()["id"]
                    out = io.StringIO()
                    w = csv.writer(out)
                    w.writerow(["sample_id", "sample_type", "concentration"])
                    for i in range(10_000):
                        w.writerow([f"S-{i:06d}", "DNA" if i % 2 else "RNA", "12.5"])
                    body = out.getvalue().encode()
                    start = time.perf_counter()
                    r = await c.post(
                        f"/api/templates/{tid}/validate",
                        content=body,
                        params={"include_rows": "false"},
                    )
                    took = time.perf_counter() - start
                    assert r.json()["valid"], r.text[:300]
                    results.append(
                        f"sheet validation (HTTP, 10,000 rows)   {10_000 / took:10,.0f} rows/s"
                        f"  ({took:.2f} s per sheet)"
                    )

            # -- event ingestion Kafka -> PostgreSQL
            esettings = EventServiceSettings(
                postgres_dsn=SecretStr(dsn), kafka_bootstrap=bootstrap, group_id=f"bench-{schema}"
            )
            topic = "tracseq.bench"
            with served(event_service(esettings)) as base:
                pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
                async with EventPublisher(bootstrap) as publisher:
                    # let the consumer find the topic first
                    await publisher.publish(
                        topic, CloudEvent[Any](source="/bench", type="tracseq.bench.warm")
                    )
                    while not await pool.fetchval("SELECT count(*) FROM stored_events"):  # noqa: ASYNC110
                        await asyncio.sleep(0.2)
                    batch = [
                        CloudEvent[Any](
                            source="/bench",
                            type="tracseq.bench.sample",
                            subject=f"s-{i % 100}",
                            data={"n": i},
                        )
                        for i in range(args.events)
                    ]
                    before = await pool.fetchval("SELECT count(*) FROM stored_events")
                    start = time.perf_counter()
                    await publisher.publish_many(topic, batch)
                    stored = "SELECT count(*) FROM stored_events"
                    while await pool.fetchval(stored) < before + args.events:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                    rate = args.events / (time.perf_counter() - start)
                    results.append(f"event ingestion (Kafka -> PostgreSQL)  {rate:10,.0f} events/s")

                # -- query latency over 100,000 stored events
                await pool.execute(
                    """INSERT INTO stored_events (id, type, source, subject, time, data, topic)
                       SELECT 'q-' || g,
                              'tracseq.' || (ARRAY['template','sample','run','qc'])[1 + g % 4]
                              || '.' || (ARRAY['created','published','passed'])[1 + g % 3],
                              '/src-' || (g % 10), 's-' || (g % 1000),
                              now() - (g || ' seconds')::interval,
                              jsonb_build_object('n', g), 'tracseq.bulk'
                       FROM generate_series(1, $1) AS g""",
                    args.stored,
                )
                await pool.execute("ANALYZE stored_events")
                queries = [
                    {"type": "tracseq.sample.*"},
                    {"type": "tracseq.run.passed", "source": "/src-3"},
                    {"subject": "s-42"},
                    {"limit": 100},
                ]
                async with httpx.AsyncClient(base_url=base, timeout=30) as c:
                    latencies: list[float] = []
                    for _ in range(50):
                        for q in queries:
                            start = time.perf_counter()
                            r = await c.get("/api/events", params=q)
                            latencies.append((time.perf_counter() - start) * 1000)
                            assert r.status_code == 200
                results.append(
                    f"query latency, {args.stored:,} events       "
                    f"p50 {pct(latencies, 0.5):6.1f} ms  p99 {pct(latencies, 0.99):6.1f} ms"
                    f"  (mean {statistics.fmean(latencies):.1f})"
                )
                await pool.close()
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()
    print("\n".join(results))


if __name__ == "__main__":
    asyncio.run(main())
