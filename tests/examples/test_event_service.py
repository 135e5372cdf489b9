"""The event service on the real PostgreSQL and the Kafka-protocol broker, and the
end-to-end path: template published in the template service → stored by the event
service → visible through query and the live SSE stream."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from examples.event_service.app import EventServiceSettings
from examples.event_service.app import create_app as create_event_service
from examples.template_service.app import TemplateServiceSettings
from examples.template_service.app import create_app as create_template_service
from pydantic import SecretStr
from services_support import ThreadedProxy, serve, wait_for

from tracseq_kit.events import CloudEvent, EventPublisher
from tracseq_kit.testing import IdentityMinter, PostgresSchema

MINTER = IdentityMinter(audience="event_service")
BOB = MINTER.auth("bob", scopes=["events:read", "events:write"])
ALICE = MINTER.auth(
    "alice", scopes=["templates:write", "templates:read"], audience="template_service"
)
# requests to the event service, as bob
get = functools.partial(httpx.get, auth=BOB)
post = functools.partial(httpx.post, auth=BOB)
stream = functools.partial(httpx.stream, auth=BOB)

TEMPLATE = {
    "name": "RNA submission",
    "fields": [{"name": "sample_id", "type": "text", "required": True}],
}


@pytest.fixture
def event_service(postgres_schema: PostgresSchema, kafka_bootstrap: str) -> Iterator[str]:
    settings = EventServiceSettings(
        postgres_dsn=SecretStr(postgres_schema.dsn),
        kafka_bootstrap=kafka_bootstrap,
        group_id=f"events-{time.monotonic_ns()}",
        poll_interval=0.1,
        identity_keys=MINTER.keys,
    )
    with serve(create_event_service(settings)) as base:
        yield base


def test_template_events_reach_query_and_the_live_stream(
    event_service: str, postgres_schema: PostgresSchema, kafka_bootstrap: str
) -> None:
    # The live stream, opened before anything happens, from the start of the log. The
    # broker outlives this test: the stream also carries earlier tests' template events.
    received: list[dict[str, Any]] = []
    ours: dict[str, str] = {}

    def listen() -> None:
        with stream(
            "GET",
            f"{event_service}/api/events/stream",
            params={"type": "tracseq.template.*"},
            headers={"last-event-id": "0"},
            timeout=60,
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    received.append(json.loads(line[6:]))
                    if any(
                        e["type"] == "tracseq.template.published" and e["subject"] == ours.get("id")
                        for e in received
                    ):
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()

    settings = TemplateServiceSettings(
        postgres_dsn=SecretStr(postgres_schema.dsn),
        kafka_bootstrap=kafka_bootstrap,
        identity_keys=MINTER.keys,
    )
    with (
        serve(create_template_service(settings)) as url,
        httpx.Client(base_url=url, timeout=30, auth=ALICE) as templates,
    ):
        tid = ours["id"] = templates.post("/api/templates", json=TEMPLATE).json()["id"]
        assert templates.post(f"/api/templates/{tid}/publish").status_code == 200

        def published() -> list[dict[str, Any]]:
            page = get(
                f"{event_service}/api/events", params={"type": "tracseq.template.*", "subject": tid}
            ).json()
            return [e for e in page["items"] if e["type"] == "tracseq.template.published"]

        (stored,) = wait_for(published)
    assert stored["data"]["template_id"] == tid and stored["topic"] == "tracseq.templates"
    one = get(f"{event_service}/api/events/{stored['id']}").json()
    assert one["seq"] == stored["seq"]
    listener.join(30)
    assert [e["type"] for e in received if e["subject"] == tid] == [
        "tracseq.template.created",
        "tracseq.template.published",
    ]
    stats = get(f"{event_service}/api/events/stats").json()
    assert any(s["type"] == "tracseq.template.published" and s["count"] >= 1 for s in stats)


def test_publish_over_http_is_stored_once(event_service: str) -> None:
    event = {
        "source": "/lab/robot-3",
        "type": "tracseq.sample.received",
        "subject": "S-0042",
        "data": {"rack": "R1"},
    }
    accepted = post(f"{event_service}/api/events", json=event)
    assert accepted.status_code == 202
    event_id = accepted.json()["id"]
    # the same event again (a client retry): still one stored copy
    assert post(f"{event_service}/api/events", json={**event, "id": event_id}).status_code == 202

    def stored() -> Any:
        r = get(f"{event_service}/api/events/{event_id}")
        return r.json() if r.status_code == 200 else None

    got = wait_for(stored)
    assert got["data"] == {"rack": "R1"} and got["source"] == "/lab/robot-3"
    page = get(f"{event_service}/api/events", params={"subject": "S-0042"}).json()
    assert len(page["items"]) == 1


def test_user_mistakes(event_service: str) -> None:
    assert get(f"{event_service}/api/events/nope").status_code == 404
    bad = post(f"{event_service}/api/events", json={"type": "x"})
    assert bad.status_code == 422 and "source" in bad.text
    assert get(f"{event_service}/api/events", params={"limit": 0}).status_code == 422
    r = get(f"{event_service}/api/events/stream", headers={"last-event-id": "abc"})
    assert r.status_code == 400
    assert get(f"{event_service}/health").json()["service"] == "event_service"


def test_replay_republishes_a_filtered_range_with_progress(
    event_service: str, kafka_bootstrap: str
) -> None:
    import asyncio

    from aiokafka import AIOKafkaConsumer

    ids = []
    for i in range(5):
        r = post(
            f"{event_service}/api/events",
            json={
                "source": "/lab/replay",
                "type": "tracseq.qc.passed",
                "subject": f"S-{i}",
                "data": {"n": i},
            },
        )
        ids.append(r.json()["id"])
    wait_for(
        lambda: (
            len(
                get(f"{event_service}/api/events", params={"source": "/lab/replay"}).json()["items"]
            )
            == 5
        )
    )
    target = f"replay-target-{time.monotonic_ns()}"
    job = post(
        f"{event_service}/api/events/replay", json={"target_topic": target, "source": "/lab/replay"}
    )
    assert job.status_code == 202
    job_id = job.json()["id"]
    done = wait_for(
        lambda: (
            (j := get(f"{event_service}/api/events/replay/{job_id}").json())["status"] == "finished"
            and j
        )
    )
    assert done["total"] == done["done"] == 5

    async def read() -> list[str]:
        consumer = AIOKafkaConsumer(
            target, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        got: list[str] = []
        try:
            async with asyncio.timeout(30):
                while len(got) < 5:
                    for records in (await consumer.getmany(timeout_ms=300)).values():
                        got += [dict(r.headers)["ce_id"].decode() for r in records]
        finally:
            await consumer.stop()
        return got

    assert sorted(asyncio.run(read())) == sorted(ids)
    loop = post(f"{event_service}/api/events/replay", json={"target_topic": "tracseq.templates"})
    assert loop.status_code == 422 and "loop" in loop.json()["detail"]
    assert get(f"{event_service}/api/events/replay/nope").status_code == 404


@pytest.mark.timeout(120)
def test_events_arriving_while_postgres_is_down_are_stored_once_it_is_back(
    postgres_schema: PostgresSchema, kafka_bootstrap: str
) -> None:
    dsn = urlsplit(postgres_schema.dsn)
    if dsn.hostname is None or dsn.port is None:
        pytest.skip("the outage proxy needs PostgreSQL over TCP (set TRACSEQ_TEST_POSTGRES_DSN)")
    topic = f"tracseq.outage-{uuid.uuid4().hex[:8]}"
    proxy = ThreadedProxy((dsn.hostname, dsn.port))
    try:
        netloc = f"{dsn.username or 'postgres'}@127.0.0.1:{proxy.port}"
        settings = EventServiceSettings(
            postgres_dsn=SecretStr(urlunsplit(dsn._replace(netloc=netloc))),
            kafka_bootstrap=kafka_bootstrap,
            group_id=f"outage-{uuid.uuid4().hex}",
            identity_keys=MINTER.keys,
        )
        with (
            serve(create_event_service(settings)) as base,
            httpx.Client(base_url=base, auth=BOB) as http,
        ):

            def publish(data: dict[str, int]) -> CloudEvent[dict[str, int]]:
                event = CloudEvent[dict[str, int]](
                    type="tracseq.sample.received", source="/lab/robot-3", data=data
                )

                async def send() -> None:
                    async with EventPublisher(kafka_bootstrap) as publisher:
                        await publisher.publish(topic, event)

                asyncio.run(send())
                return event

            # First the consumer finds the new topic and stores an event as usual...
            first = publish({"wells": 48})
            wait_for(lambda: http.get(f"/api/events/{first.id}").status_code == 200)
            proxy.cut()  # ... then PostgreSQL goes away
            sample = publish({"wells": 96})
            time.sleep(5)  # the event arrives and cannot be stored
            proxy.restore()
            stored = wait_for(
                lambda: (r := http.get(f"/api/events/{sample.id}")).status_code == 200 and r.json()
            )
            metrics = http.get("/metrics").text
    finally:
        proxy.close()
    assert stored["topic"] == topic and stored["data"] == {"wells": 96}
    outcomes = {
        line.split('outcome="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("tracseq_events_consumed_total{") and f'topic="{topic}"' in line
    }
    assert outcomes.get("paused", 0) >= 1 and outcomes["handled"] == 2
    assert "retried" not in outcomes and "dead_lettered" not in outcomes


def test_a_replay_whose_instance_died_is_resumed_where_it_stopped(
    event_service: str, postgres_schema: PostgresSchema, kafka_bootstrap: str
) -> None:
    source = f"/lab/orphan-{uuid.uuid4().hex[:6]}"
    for n in range(5):
        post(
            f"{event_service}/api/events",
            json={"source": source, "type": "tracseq.qc.passed", "subject": f"S-{n}"},
        )
    stored = wait_for(
        lambda: (
            len(
                items := get(f"{event_service}/api/events", params={"source": source}).json()[
                    "items"
                ]
            )
            == 5
            and sorted(items, key=lambda e: e["seq"])
        )
    )
    target = f"replay-orphan-{uuid.uuid4().hex[:8]}"

    async def orphan() -> None:  # a job that re-published 2 events, then lost its instance
        conn = await asyncpg.connect(postgres_schema.dsn)
        try:
            await conn.execute(
                """INSERT INTO replay_jobs (id, filters, target_topic, total, done, position,
                                            heartbeat_at)
                   VALUES ('replay-orphan', $1::jsonb, $2, 5, 2, $3, now() - interval '5 min')""",
                json.dumps({"source": source}),
                target,
                stored[1]["seq"],
            )
        finally:
            await conn.close()

    asyncio.run(orphan())
    job = wait_for(
        lambda: (
            (j := get(f"{event_service}/api/events/replay/replay-orphan").json())["status"]
            == "finished"
            and j
        ),
        seconds=60,
    )
    assert (job["done"], job["total"]) == (5, 5)

    async def replayed() -> list[str]:  # everything in the target topic, nothing twice
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            target, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest", group_id=None
        )
        await consumer.start()
        got: list[str] = []
        try:
            async with asyncio.timeout(30):
                while len(got) < 3:  # the relay publishes after the job wrote the outbox
                    for rs in (await consumer.getmany(timeout_ms=300)).values():
                        got += [dict(r.headers)["ce_id"].decode() for r in rs]
            for rs in (await consumer.getmany(timeout_ms=1000)).values():  # and no more
                got += [dict(r.headers)["ce_id"].decode() for r in rs]
        finally:
            await consumer.stop()
        return got

    assert sorted(asyncio.run(replayed())) == sorted(e["id"] for e in stored[2:])


def test_a_retried_replay_request_gets_the_job_it_started(event_service: str) -> None:
    key = {"idempotency-key": f"replay-{uuid.uuid4().hex}"}
    body = {"target_topic": f"replay-idem-{uuid.uuid4().hex[:8]}", "source": "/lab/none"}
    first = post(f"{event_service}/api/events/replay", json=body, headers=key)
    again = post(f"{event_service}/api/events/replay", json=body, headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = post(
        f"{event_service}/api/events/replay", json={**body, "source": "/lab/x"}, headers=key
    )
    assert other.status_code == 422 and "already used" in other.json()["detail"]
    unkeyed = [post(f"{event_service}/api/events/replay", json=body) for _ in range(2)]
    assert unkeyed[0].json()["id"] != unkeyed[1].json()["id"]  # no key: two jobs


def test_the_actor_of_a_published_event_is_the_verified_caller(
    event_service: str, kafka_bootstrap: str
) -> None:
    event = {
        "source": "/lab/robot-3",
        "type": "tracseq.sample.received",
        "subject": "S-0043",
        "data": {"rack": "R2"},
        "extensions": {"actor": "mallory"},  # whatever the body claims
    }
    accepted = post(f"{event_service}/api/events", json=event)
    assert accepted.status_code == 202
    event_id = accepted.json()["id"]

    async def sent_headers() -> dict[str, str]:  # what the service sent to Kafka
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            "tracseq.events", bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            async with asyncio.timeout(30):
                while True:
                    for records in (await consumer.getmany(timeout_ms=300)).values():
                        for record in records:
                            headers = {k: v.decode() for k, v in record.headers}
                            if headers.get("ce_id") == event_id:
                                return headers
        finally:
            await consumer.stop()

    assert asyncio.run(sent_headers())["ce_actor"] == "bob"
    reader = MINTER.auth("reader", scopes=["events:read"])
    refused = httpx.post(f"{event_service}/api/events", json=event, auth=reader)
    assert refused.status_code == 403
    job = post(
        f"{event_service}/api/events/replay",
        json={"target_topic": f"replay-who-{uuid.uuid4().hex[:8]}", "source": "/lab/none"},
    ).json()
    assert job["requested_by"] == "bob"
