"""Test support for services built with the kit.

Installing ``tracseq-kit[test]`` registers a pytest plugin (entry point ``tracseq``)
that provides the session fixtures ``postgres_dsn``, ``redis_url`` and
``kafka_bootstrap``. See :mod:`tracseq_kit.testing._plugin` for how each is resolved.
"""

__all__: list[str] = []
