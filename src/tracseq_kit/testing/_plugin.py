"""The ``tracseq`` pytest plugin: real-server fixtures for kit users' tests.

Each session fixture yields a URL of a running server, resolved in this order:

1. an environment variable (``TRACSEQ_TEST_POSTGRES_DSN``, ``TRACSEQ_TEST_REDIS_URL``,
   ``TRACSEQ_TEST_KAFKA_BOOTSTRAP``) pointing at a running server;
2. (to come) ``--tracseq-docker`` with a Docker engine;
3. (to come) the embedded servers of :mod:`tracseq_kit.local`.
"""

from __future__ import annotations

import os

import pytest


def _from_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"set {name} to the URL of a running server", pytrace=False)
    return value


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of a running PostgreSQL server."""
    return _from_env("TRACSEQ_TEST_POSTGRES_DSN")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a running Redis server."""
    return _from_env("TRACSEQ_TEST_REDIS_URL")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Comma-separated bootstrap addresses of a running Kafka-protocol broker."""
    return _from_env("TRACSEQ_TEST_KAFKA_BOOTSTRAP")
