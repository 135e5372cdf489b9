"""The ``tracseq`` pytest plugin: real-server fixtures for the kit's and its users' tests.

Session fixtures ``postgres_dsn``, ``redis_url`` and ``kafka_bootstrap`` each give the
URL of a running server, resolved once per session, on first use, in this order:

1. an environment variable (``TRACSEQ_TEST_POSTGRES_DSN``, ``TRACSEQ_TEST_REDIS_URL``,
   ``TRACSEQ_TEST_KAFKA_BOOTSTRAP``) pointing at a running server;
2. with ``--tracseq-docker``: the Docker Compose project that pytest-docker starts
   (the ``docker_compose_file`` fixture; by default ``tests/docker-compose.yml``); the
   tests fail with a clear message when no Docker engine answers;
3. otherwise an embedded server from :mod:`tracseq_kit.local`, stopped at session end.

Isolation on shared servers: ``postgres_schema`` (a fresh schema per test module),
``postgres_database`` (a fresh database per test module), ``redis_prefix`` (a unique key
prefix per test, its keys deleted afterwards) and ``kafka_topic`` (unique topic names).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tracseq_kit._exceptions import TracSeqError
from tracseq_kit.testing._isolation import (
    PostgresSchema,
    TopicFactory,
    delete_keys,
    execute,
    run_async,
    topic_name,
    unique_name,
    with_database,
    with_query,
)
from tracseq_kit.testing._resolve import (
    DEFAULT_DOCKER_KAFKA_PORT,
    ServerResolver,
    Service,
    docker_problem,
    docker_urls,
)

#: The compose file used by ``--tracseq-docker``; point ``docker_compose_file`` at it.
COMPOSE_FILE = Path(__file__).with_name("docker-compose.yml")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tracseq", "tracseq-kit test servers")
    group.addoption(
        "--tracseq-docker",
        action="store_true",
        default=False,
        help="start PostgreSQL, Redis and Kafka with Docker Compose (pytest-docker) for "
        "fixtures whose TRACSEQ_TEST_* variable is unset, instead of embedded servers",
    )


@pytest.fixture(scope="session")
def _tracseq_servers(request: pytest.FixtureRequest) -> Iterator[ServerResolver]:
    """The session's server resolver (internal: use ``postgres_dsn`` & co.)."""

    def from_docker() -> Mapping[Service, str]:
        try:
            compose_file = request.getfixturevalue("docker_compose_file")
        except pytest.FixtureLookupError:
            pytest.fail(
                "--tracseq-docker needs pytest-docker: pip install 'tracseq-kit[test]'",
                pytrace=False,
            )
        for path in [compose_file] if isinstance(compose_file, str | Path) else compose_file:
            if not Path(path).is_file():
                pytest.fail(
                    f"--tracseq-docker: compose file {path} does not exist; add it, or "
                    "override the docker_compose_file fixture to return "
                    "str(tracseq_kit.testing.COMPOSE_FILE)",
                    pytrace=False,
                )
        services = request.getfixturevalue("docker_services")
        ip = os.environ.get("TRACSEQ_TEST_KAFKA_HOST") or request.getfixturevalue("docker_ip")
        port = int(os.environ.get("TRACSEQ_TEST_KAFKA_PORT") or DEFAULT_DOCKER_KAFKA_PORT)
        return docker_urls(services, ip, kafka_port=port)

    resolver = ServerResolver(
        environ=os.environ,
        use_docker=bool(request.config.getoption("--tracseq-docker")),
        docker_problem=docker_problem,
        docker_urls=from_docker,
    )
    try:
        yield resolver
    finally:
        resolver.close()


def _url(resolver: ServerResolver, service: Service) -> str:
    try:
        return resolver.resolve(service).url
    except TracSeqError as exc:
        pytest.fail(f"no {service} server for the tests: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def postgres_dsn(_tracseq_servers: ServerResolver) -> str:
    """DSN of a running PostgreSQL server (superuser; asyncpg and libpq accept it)."""
    return _url(_tracseq_servers, "postgres")


@pytest.fixture(scope="session")
def redis_url(_tracseq_servers: ServerResolver) -> str:
    """URL of a running Redis server (``redis://`` or ``unix://``, for ``from_url``)."""
    return _url(_tracseq_servers, "redis")


@pytest.fixture(scope="session")
def kafka_bootstrap(_tracseq_servers: ServerResolver) -> str:
    """Comma-separated ``host:port`` bootstrap addresses of a Kafka-protocol broker."""
    return _url(_tracseq_servers, "kafka")


@pytest.fixture(scope="module")
def postgres_schema(postgres_dsn: str, request: pytest.FixtureRequest) -> Iterator[PostgresSchema]:
    """A fresh schema for this test module, dropped with everything in it afterwards."""
    name = unique_name(request.module.__name__.rpartition(".")[2])
    run_async(lambda: execute(postgres_dsn, f'CREATE SCHEMA "{name}"'))
    try:
        yield PostgresSchema(
            name=name,
            dsn=with_query(postgres_dsn, search_path=name),
            server_settings={"search_path": name},
        )
    finally:
        run_async(lambda: execute(postgres_dsn, f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


@pytest.fixture(scope="module")
def postgres_database(postgres_dsn: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """DSN of a fresh, empty database for this test module, dropped afterwards."""
    name = unique_name(request.module.__name__.rpartition(".")[2])
    run_async(lambda: execute(postgres_dsn, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(postgres_dsn, name)
    finally:
        run_async(lambda: execute(postgres_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix (``test:<hex>:``) for this test; its keys are deleted after it."""
    prefix = f"test:{unique_name('t')[2:]}:"
    try:
        yield prefix
    finally:
        delete_keys(redis_url, prefix)


@pytest.fixture
def kafka_topic() -> TopicFactory:
    """A factory of unique topic names: ``kafka_topic("orders")`` → ``orders.<hex>``."""
    return topic_name
