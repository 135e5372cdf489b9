"""Health checks and endpoints.

A :class:`HealthRegistry` holds named checks (:class:`PostgresCheck`,
:class:`RedisCheck`, :class:`KafkaCheck`, :class:`HttpCheck`, :class:`CallableCheck`, or
any callable), each with a timeout, run concurrently and cached. Its
:meth:`~HealthRegistry.asgi_app` (:class:`HealthEndpoints`) serves ``/livez``,
``/readyz``, ``/startupz`` and ``/health`` from any ASGI framework.
"""

from tracseq_kit.health._asgi import HealthEndpoints
from tracseq_kit.health._checks import (
    CallableCheck,
    HealthCheck,
    HttpCheck,
    KafkaCheck,
    PostgresCheck,
    RedisCheck,
)
from tracseq_kit.health._registry import CheckResult, HealthRegistry, HealthReport, Status

__all__ = [
    "CallableCheck",
    "CheckResult",
    "HealthCheck",
    "HealthEndpoints",
    "HealthRegistry",
    "HealthReport",
    "HttpCheck",
    "KafkaCheck",
    "PostgresCheck",
    "RedisCheck",
    "Status",
]
