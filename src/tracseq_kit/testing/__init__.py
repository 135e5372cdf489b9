"""Test support for services built with the kit.

Installing ``tracseq-kit[test]`` registers a pytest plugin (entry point ``tracseq``)
with real-server fixtures, resolved from environment variables, Docker Compose
(``--tracseq-docker``) or embedded servers:

- ``postgres_dsn``, ``redis_url``, ``kafka_bootstrap`` (session scope): server URLs;
- ``postgres_schema`` (a :class:`PostgresSchema`) and ``postgres_database`` (a DSN):
  a fresh schema or database per test module, dropped afterwards;
- ``redis_prefix``: a unique key prefix per test, its keys deleted afterwards;
- ``kafka_topic``: a :class:`TopicFactory` of unique topic names.

The helpers below are the same ones the fixtures use, for code that needs them
outside fixtures. :data:`COMPOSE_FILE` is the compose file ``--tracseq-docker`` expects.
:class:`TcpProxy` sits between a client and a real server so a test can cut the
connection (an outage) without losing the server's state. :class:`IdentityMinter` signs
identity assertions as the gateway does, so a service's tests can act as anyone.
"""

from tracseq_kit.testing._identity import IdentityMinter
from tracseq_kit.testing._isolation import PostgresSchema, TopicFactory, topic_name, unique_name
from tracseq_kit.testing._plugin import COMPOSE_FILE
from tracseq_kit.testing._proxy import TcpProxy

__all__ = [
    "COMPOSE_FILE",
    "IdentityMinter",
    "PostgresSchema",
    "TcpProxy",
    "TopicFactory",
    "topic_name",
    "unique_name",
]
