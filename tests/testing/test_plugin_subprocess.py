"""The plugin as a kit user gets it: a fresh pytest run in a subprocess."""

from __future__ import annotations

import os

import pytest

from tracseq_kit.testing._resolve import ENV_VARS, docker_problem

pytestmark = pytest.mark.timeout(240)

CONFTEST = """
import pytest

@pytest.fixture
def anyio_backend():
    return "asyncio"
"""

USES_EVERY_FIXTURE = """
import os
from urllib.parse import parse_qs, urlsplit

import aiokafka
import anyio
import asyncpg
import pytest
import redis.asyncio

EXPECT = os.environ["EXPECT"]


def test_urls_point_at_the_expected_servers(postgres_dsn, redis_url, kafka_bootstrap):
    if EXPECT == "embedded":
        socket_dir = parse_qs(urlsplit(postgres_dsn).query)["host"][0]
        assert "tracseq-postgresql-" in socket_dir
        assert redis_url.startswith("unix://") and "tracseq-redis-" in redis_url
    else:
        assert postgres_dsn == os.environ["TRACSEQ_TEST_POSTGRES_DSN"]
        assert redis_url == os.environ["TRACSEQ_TEST_REDIS_URL"]
    assert kafka_bootstrap.startswith("127.0.0.1:")


@pytest.mark.anyio
async def test_postgres(postgres_schema):
    conn = await asyncpg.connect(postgres_schema.dsn)
    try:
        await conn.execute("CREATE TABLE t (x int)")
        await conn.execute("INSERT INTO t VALUES (41)")
        assert await conn.fetchval("SELECT x + 1 FROM t") == 42
    finally:
        await conn.close()


@pytest.mark.anyio
async def test_redis(redis_url, redis_prefix):
    client = redis.asyncio.from_url(redis_url)
    try:
        await client.set(redis_prefix + "k", "v")
        assert await client.get(redis_prefix + "k") == b"v"
    finally:
        await client.aclose()


@pytest.mark.anyio
async def test_kafka(kafka_bootstrap, kafka_topic):
    topic = kafka_topic("orders")
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"v1")
    finally:
        await producer.stop()
    consumer = aiokafka.AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_bootstrap, group_id="g", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        with anyio.fail_after(30):
            assert (await consumer.getone()).value == b"v1"
    finally:
        await consumer.stop()
"""


def _clear_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS.values():
        monkeypatch.delenv(name, raising=False)


def test_embedded_servers_when_no_variable_is_set(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_env(monkeypatch)
    monkeypatch.setenv("EXPECT", "embedded")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_user=USES_EVERY_FIXTURE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_given_servers_when_variables_are_set(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    postgres_dsn: str,
    redis_url: str,
) -> None:
    # This session's servers: the machine's under CI (from the variables), else embedded
    # ones that stay up for the session. Either way the inner run must use exactly them.
    _clear_env(monkeypatch)
    monkeypatch.setenv("EXPECT", "env")
    monkeypatch.setenv(ENV_VARS["postgres"], postgres_dsn)
    monkeypatch.setenv(ENV_VARS["redis"], redis_url)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_user=USES_EVERY_FIXTURE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_no_server_is_started_for_tests_that_do_not_ask(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_env(monkeypatch)
    pytester.makepyfile(
        test_plain="""
        def test_nothing(kafka_topic):
            assert kafka_topic("x").startswith("x.")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--setup-plan")
    result.stdout.fnmatch_lines(["*SETUP    F kafka_topic*"])
    assert "postgres_dsn" not in result.stdout.str()
    assert "_tracseq_servers" not in result.stdout.str()


def test_docker_option_without_an_engine_fails_with_a_clear_message(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clear_env(monkeypatch)
    fake_bin = pytester.mkdir("fakebin")
    fake = fake_bin / "docker"
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    pytester.makepyfile(
        test_docker="""
        def test_needs_redis(redis_url):
            pass
        def test_needs_kafka(kafka_bootstrap):
            pass
        def test_needs_nothing():
            pass
        """
    )
    result = pytester.runpytest_subprocess("--tracseq-docker", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*no redis server for the tests: --tracseq-docker was given but Docker cannot be "
            "used: `docker info*` failed: Cannot connect to the Docker daemon*",
        ]
    )


@pytest.mark.docker
def test_docker_compose_servers_with_an_engine(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    problem = docker_problem()
    if problem is not None:
        pytest.skip(f"no Docker engine here: {problem}")
    from tracseq_kit.testing import COMPOSE_FILE

    _clear_env(monkeypatch)
    monkeypatch.setenv("EXPECT", "docker")
    pytester.makeconftest(
        CONFTEST
        + f"""
@pytest.fixture(scope="session")
def docker_compose_file():
    return {str(COMPOSE_FILE)!r}
"""
    )
    pytester.makepyfile(
        test_user=USES_EVERY_FIXTURE.replace(
            'assert kafka_bootstrap.startswith("127.0.0.1:")', "assert kafka_bootstrap"
        ).replace(
            """        assert postgres_dsn == os.environ["TRACSEQ_TEST_POSTGRES_DSN"]
        assert redis_url == os.environ["TRACSEQ_TEST_REDIS_URL"]""",
            """        assert postgres_dsn.startswith("postgresql://postgres@")
        assert redis_url.startswith("redis://")""",
        )
    )
    result = pytester.runpytest_subprocess("--tracseq-docker", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
