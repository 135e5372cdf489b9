"""The service chassis: :func:`create_service` and the pure-ASGI middleware it is built from.

Each middleware works alone in front of any ASGI application; ``create_service`` stacks
them on a FastAPI app with a lifespan that opens :class:`Resource` objects in order and
closes them in reverse, health endpoints and ``/metrics``. Needs the ``server`` extra
(``pip install 'tracseq-kit[server]'``); importing without it raises
``MissingDependencyError``.
"""

try:
    import fastapi as _fastapi  # noqa: F401
    import starlette as _starlette  # noqa: F401
except ImportError as _exc:
    from tracseq_kit._exceptions import MissingDependencyError

    raise MissingDependencyError(
        _exc.name or "fastapi", extra="server", purpose="tracseq_kit.service"
    ) from None

from tracseq_kit.service._access_log import AccessLogMiddleware
from tracseq_kit.service._app import create_service
from tracseq_kit.service._body_limit import BodySizeLimitMiddleware, RequestBodyTooLargeError
from tracseq_kit.service._errors import ProblemDetailsMiddleware, install_exception_handlers
from tracseq_kit.service._health import HealthCheck, HealthEndpoints
from tracseq_kit.service._metrics import MetricsEndpoint, MetricsMiddleware
from tracseq_kit.service._request_id import RequestIdMiddleware
from tracseq_kit.service._resources import (
    Resource,
    Resources,
    kafka_producer,
    postgres_pool,
    redis_client,
)
from tracseq_kit.service._run import run_service
from tracseq_kit.service._tracing import TracingMiddleware

__all__ = [
    "AccessLogMiddleware",
    "BodySizeLimitMiddleware",
    "HealthCheck",
    "HealthEndpoints",
    "MetricsEndpoint",
    "MetricsMiddleware",
    "ProblemDetailsMiddleware",
    "RequestBodyTooLargeError",
    "RequestIdMiddleware",
    "Resource",
    "Resources",
    "TracingMiddleware",
    "create_service",
    "install_exception_handlers",
    "kafka_producer",
    "postgres_pool",
    "redis_client",
    "run_service",
]
