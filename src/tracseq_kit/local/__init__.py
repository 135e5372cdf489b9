"""Embedded, real PostgreSQL, Redis and a Kafka-protocol broker; no Docker needed.

For local runs (``tracseq dev``) and tests (the ``tracseq`` pytest plugin). Each server
is a class usable as a sync or async context manager whose ``url`` the production
clients accept unchanged (asyncpg, redis-py asyncio, aiokafka)::

    from tracseq_kit.local import EmbeddedKafka, EmbeddedPostgres, EmbeddedRedis

    async with EmbeddedPostgres() as pg, EmbeddedRedis() as redis, EmbeddedKafka() as kafka:
        conn = await asyncpg.connect(pg.url)
        client = redis.asyncio.from_url(redis.url)
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=kafka.url)

The functions :func:`embedded_postgres`, :func:`embedded_redis` and
:func:`embedded_kafka` are async context managers that yield just the URL.

Needs ``pip install 'tracseq-kit[local]'``; without it, starting a server raises
:class:`~tracseq_kit.MissingDependencyError`. A server that does not come up in time
raises :class:`~tracseq_kit.EmbeddedServerError` with the tail of its log. Start and
stop times are logged at INFO on the ``tracseq_kit.local`` logger.
"""

from tracseq_kit.local._base import EmbeddedServer
from tracseq_kit.local._functions import embedded_kafka, embedded_postgres, embedded_redis
from tracseq_kit.local._kafka import EmbeddedKafka
from tracseq_kit.local._postgres import EmbeddedPostgres
from tracseq_kit.local._redis import EmbeddedRedis

__all__ = [
    "EmbeddedKafka",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServer",
    "embedded_kafka",
    "embedded_postgres",
    "embedded_redis",
]
