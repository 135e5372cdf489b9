"""The service chassis: :func:`create_service` and the middleware it is built from.

``create_service`` stacks the pure-ASGI middleware of :mod:`tracseq_kit.asgi` (request
ids, tracing, problem+json) and this package's own (body limit, metrics, access log) on a
FastAPI app with a lifespan that opens :class:`Resource` objects in order and
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
from tracseq_kit.service._contract import COMMON_PROBLEMS, problems
from tracseq_kit.service._errors import install_exception_handlers
from tracseq_kit.service._health import HealthProvider
from tracseq_kit.service._idempotency import (
    Idempotency,
    IdempotencyReplay,
    Idempotent,
    IdempotentWrite,
    idempotent_write,
)
from tracseq_kit.service._identity import (
    TOKEN_URL,
    CurrentIdentity,
    OptionalIdentity,
    identity_of,
    require_scopes,
)
from tracseq_kit.service._metrics import MetricsEndpoint, MetricsMiddleware
from tracseq_kit.service._resources import (
    Resource,
    Resources,
    kafka_producer,
    postgres_pool,
    redis_client,
    resource,
)
from tracseq_kit.service._run import run_service
from tracseq_kit.service._text import NulTextError, RejectNulMiddleware

__all__ = [
    "COMMON_PROBLEMS",
    "TOKEN_URL",
    "AccessLogMiddleware",
    "BodySizeLimitMiddleware",
    "CurrentIdentity",
    "HealthProvider",
    "Idempotency",
    "IdempotencyReplay",
    "Idempotent",
    "IdempotentWrite",
    "MetricsEndpoint",
    "MetricsMiddleware",
    "NulTextError",
    "OptionalIdentity",
    "RejectNulMiddleware",
    "RequestBodyTooLargeError",
    "Resource",
    "Resources",
    "create_service",
    "idempotent_write",
    "identity_of",
    "install_exception_handlers",
    "kafka_producer",
    "postgres_pool",
    "problems",
    "redis_client",
    "require_scopes",
    "resource",
    "run_service",
]
