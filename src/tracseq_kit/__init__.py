"""tracseq-kit: the SDK and service framework of the TracSeq LIMS microservices.

Each capability lives in one subpackage with one public import path:

- :mod:`tracseq_kit.health`: health checks and ASGI health endpoints
- :mod:`tracseq_kit.local`: embedded PostgreSQL, Redis and Kafka-protocol broker
- :mod:`tracseq_kit.testing`: the pytest plugin and public test doubles
- :mod:`tracseq_kit.telemetry`: metrics registry, logging and tracing setup

The error tree (:class:`TracSeqError` and its subclasses) is exported here.
"""

from tracseq_kit._exceptions import (
    BulkheadFullError,
    CircuitOpenError,
    ConfigurationError,
    DeadlineExceededError,
    DependencyUnavailableError,
    EmbeddedServerError,
    EventEncodingError,
    EventError,
    InfrastructureError,
    MissingDependencyError,
    PublishError,
    PublishTimeoutError,
    RateLimitExceededError,
    ResilienceError,
    RetryBudgetExhaustedError,
    SheetError,
    SheetTooLargeError,
    TracSeqError,
    UnknownEventTypeError,
)
from tracseq_kit._version import __version__

__all__ = [
    "BulkheadFullError",
    "CircuitOpenError",
    "ConfigurationError",
    "DeadlineExceededError",
    "DependencyUnavailableError",
    "EmbeddedServerError",
    "EventEncodingError",
    "EventError",
    "InfrastructureError",
    "MissingDependencyError",
    "PublishError",
    "PublishTimeoutError",
    "RateLimitExceededError",
    "ResilienceError",
    "RetryBudgetExhaustedError",
    "SheetError",
    "SheetTooLargeError",
    "TracSeqError",
    "UnknownEventTypeError",
    "__version__",
]
