"""tracseq-kit: the SDK and service framework of the TracSeq LIMS microservices.

Each capability lives in one subpackage with one public import path:

- :mod:`tracseq_kit.health`: health checks and ASGI health endpoints
- :mod:`tracseq_kit.local`: embedded PostgreSQL, Redis and Kafka-protocol broker
- :mod:`tracseq_kit.testing`: the pytest plugin and public test doubles
- :mod:`tracseq_kit.telemetry`: metrics registry, logging and tracing setup
- :mod:`tracseq_kit.service`: the service chassis (``create_service``)
- :mod:`tracseq_kit.resilience`: circuit breaker, retry, deadline, bulkhead
- :mod:`tracseq_kit.ratelimit`: rate limiters in memory or Redis
- :mod:`tracseq_kit.events`: CloudEvents on Kafka with a PostgreSQL outbox
- :mod:`tracseq_kit.eventsourcing`: event-sourced aggregates, projections, rebuilds
- :mod:`tracseq_kit.gateway`: the API gateway's building blocks
- :mod:`tracseq_kit.schemas` and :mod:`tracseq_kit.sheets`: API models, sheet validation
- :mod:`tracseq_kit.client`: the typed HTTP client (sync and async)

The error tree (:class:`TracSeqError` and its subclasses) is exported here.
"""

from tracseq_kit._exceptions import (
    AggregateNotFoundError,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BulkheadFullError,
    CircuitOpenError,
    CommandRejectedError,
    ConcurrencyError,
    ConfigurationError,
    ConflictError,
    DeadLetterNotFoundError,
    DeadlineExceededError,
    DependencyUnavailableError,
    DuplicateEventError,
    EmbeddedServerError,
    EventEncodingError,
    EventError,
    EventSourcingError,
    InfrastructureError,
    MissingDependencyError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    PublishError,
    PublishTimeoutError,
    RateLimitExceededError,
    RequestTimeoutError,
    ResilienceError,
    RetryBudgetExhaustedError,
    ServerError,
    SheetError,
    SheetTooLargeError,
    TooManyRequestsError,
    TracSeqError,
    UnknownEventTypeError,
    UnprocessableEntityError,
)
from tracseq_kit._version import __version__

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AggregateNotFoundError",
    "AuthenticationError",
    "BadRequestError",
    "BulkheadFullError",
    "CircuitOpenError",
    "CommandRejectedError",
    "ConcurrencyError",
    "ConfigurationError",
    "ConflictError",
    "DeadLetterNotFoundError",
    "DeadlineExceededError",
    "DependencyUnavailableError",
    "DuplicateEventError",
    "EmbeddedServerError",
    "EventEncodingError",
    "EventError",
    "EventSourcingError",
    "InfrastructureError",
    "MissingDependencyError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PublishError",
    "PublishTimeoutError",
    "RateLimitExceededError",
    "RequestTimeoutError",
    "ResilienceError",
    "RetryBudgetExhaustedError",
    "ServerError",
    "SheetError",
    "SheetTooLargeError",
    "TooManyRequestsError",
    "TracSeqError",
    "UnknownEventTypeError",
    "UnprocessableEntityError",
    "__version__",
]
