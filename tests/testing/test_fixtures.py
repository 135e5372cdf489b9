"""The plugin's fixtures in this very session: real servers, isolated per module/test.

Under CI the Postgres and Redis fixtures come from the machine's servers (environment
variables) and Kafka from the embedded broker; ``test_plugin_subprocess.py`` repeats
the exercise with every variable removed, so everything is embedded.
"""

from __future__ import annotations

import os

import aiokafka
import anyio
import asyncpg
import pytest
import redis.asyncio

from tracseq_kit.testing import PostgresSchema, TopicFactory
from tracseq_kit.testing._resolve import ENV_VARS, ServerResolver, Service

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("service", ["postgres", "redis", "kafka"])
def test_each_url_comes_from_its_variable_when_set_else_embedded(
    service: Service, _tracseq_servers: ServerResolver, request: pytest.FixtureRequest
) -> None:
    fixture = {"postgres": "postgres_dsn", "redis": "redis_url", "kafka": "kafka_bootstrap"}
    url = request.getfixturevalue(fixture[service])
    from_env = os.environ.get(ENV_VARS[service], "").strip()
    resolved = _tracseq_servers.resolve(service)
    assert resolved.url == url
    if from_env:
        assert (resolved.source, url) == ("env", from_env)
    else:
        assert resolved.source == "embedded"


@pytest.mark.anyio
async def test_postgres_schema_isolates_unqualified_tables(
    postgres_schema: PostgresSchema, postgres_dsn: str
) -> None:
    conn = await asyncpg.connect(postgres_schema.dsn)
    try:
        await conn.execute("CREATE TABLE runs (id int PRIMARY KEY)")
        await conn.execute("INSERT INTO runs VALUES (1), (2)")
        assert await conn.fetchval("SELECT current_schema()") == postgres_schema.name
    finally:
        await conn.close()
    # Same schema through server_settings, and the table really lives in it.
    plain = await asyncpg.connect(postgres_dsn, server_settings=postgres_schema.server_settings)
    try:
        assert await plain.fetchval("SELECT count(*) FROM runs") == 2
        where = await plain.fetchval(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'runs'"
            " AND table_schema = $1",
            postgres_schema.name,
        )
        assert where == postgres_schema.name
    finally:
        await plain.close()


@pytest.mark.anyio
async def test_postgres_database_is_fresh_and_separate(postgres_database: str) -> None:
    conn = await asyncpg.connect(postgres_database)
    try:
        name = await conn.fetchval("SELECT current_database()")
        assert postgres_database.split("?")[0].endswith("/" + name)
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == 0
    finally:
        await conn.close()


@pytest.mark.anyio
async def test_redis_prefix_is_unique_and_its_keys_are_deleted_afterwards(
    redis_url: str, redis_prefix: str, request: pytest.FixtureRequest
) -> None:
    assert redis_prefix.startswith("test:") and redis_prefix.endswith(":")
    client = redis.asyncio.from_url(redis_url)
    try:
        await client.set(redis_prefix + "a", "1")
        await client.set(redis_prefix + "b[*]", "2")  # glob characters are escaped
        assert await client.exists(redis_prefix + "a", redis_prefix + "b[*]") == 2
    finally:
        await client.aclose()
    request.config.stash.setdefault(_PREFIXES, []).append(redis_prefix)


_PREFIXES = pytest.StashKey[list[str]]()


@pytest.mark.anyio
async def test_previous_tests_redis_keys_are_gone(
    redis_url: str, redis_prefix: str, request: pytest.FixtureRequest
) -> None:
    earlier = request.config.stash.get(_PREFIXES, [])
    assert earlier, "runs after the test above (file order)"
    assert redis_prefix not in earlier
    client = redis.asyncio.from_url(redis_url)
    try:
        for prefix in earlier:
            assert [k async for k in client.scan_iter(match=prefix + "*")] == []
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_kafka_topic_round_trip_with_a_consumer_group(
    kafka_bootstrap: str, kafka_topic: TopicFactory
) -> None:
    topic = kafka_topic("samples")
    assert topic != kafka_topic("samples")
    producer = aiokafka.AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k")
    finally:
        await producer.stop()
    consumer = aiokafka.AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=kafka_topic("group"),
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        with anyio.fail_after(30):
            message = await consumer.getone()
        assert message.value == b"hello"
    finally:
        await consumer.stop()
