"""The one error tree of tracseq-kit.

Every error the kit raises on purpose derives from :class:`TracSeqError`. Third-party
errors (asyncpg, redis-py, aiokafka, httpx) are mapped into this tree where they enter
the kit, so callers catch one family. Each class carries a ``retriable`` flag that the
retry machinery reads: ``True`` means the same call may succeed if tried again later.

::

    TracSeqError
    ├── ConfigurationError            bad settings or arguments; fix the configuration
    ├── MissingDependencyError        an optional extra is not installed (names the extra)
    ├── InfrastructureError           a backing server misbehaved            (retriable)
    │   ├── EmbeddedServerError       an embedded server failed to start or stop
    │   └── DependencyUnavailableError a server could not be reached         (retriable)
    ├── ResilienceError
    │   ├── CircuitOpenError          a breaker rejected the call; ``remaining`` seconds
    │   ├── BulkheadFullError         no permit within the allowed wait       (retriable)
    │   ├── DeadlineExceededError     the call's deadline passed (also a TimeoutError)
    │   └── RetryBudgetExhaustedError retries were refused to prevent a retry storm
    ├── RateLimitExceededError        a limiter rejected the request; ``retry_after``
    ├── SheetError                    a sample sheet cannot be read (empty, encoding, …)
    │   └── SheetTooLargeError        a sheet exceeds the size or row limit
    ├── EventError
    │   ├── EventEncodingError        an event could not be encoded or decoded
    │   ├── UnknownEventTypeError     no payload model is registered for an event type
    │   ├── DeadLetterNotFoundError   no dead letter at that topic, partition and offset
    │   └── PublishError              an event could not be published        (retriable)
    │       └── PublishTimeoutError   the broker did not acknowledge in time  (retriable)
    ├── EventSourcingError
    │   ├── ConcurrencyError          a stream moved on since it was read; ``stream_id``,
    │   │                             ``expected``, ``actual`` (services answer 409)
    │   ├── DuplicateEventError       an event id is already in the store; ``event_id``
    │   ├── AggregateNotFoundError    no stream for the aggregate id (services answer 404)
    │   └── CommandRejectedError      a command is not allowed in the aggregate's current
    │                                 state; ``command``, ``state`` (services answer 409)
    └── APIError                      a TracSeq API call failed (the typed client)
        ├── APIConnectionError        no response: refused, reset, DNS        (retriable)
        │   └── APITimeoutError       no response in time (also a TimeoutError) (retriable)
        └── APIStatusError            an error status; ``status``, ``request_id``, ``problem``
            ├── BadRequestError       400
            ├── AuthenticationError   401
            ├── PermissionDeniedError 403
            ├── NotFoundError         404
            ├── RequestTimeoutError   408                                   (retriable)
            ├── ConflictError         409
            ├── PayloadTooLargeError  413
            ├── UnprocessableEntityError 422; ``errors`` lists the field errors
            ├── TooManyRequestsError  429; ``retry_after``                  (retriable)
            └── ServerError           5xx; ``retry_after`` when sent          (retriable)
"""

from __future__ import annotations

from typing import Any

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
]


class TracSeqError(Exception):
    """Base class of every error the kit raises on purpose.

    ``retriable`` tells retry loops whether trying the same call again may succeed.
    """

    retriable: bool = False


class ConfigurationError(TracSeqError, ValueError):
    """Settings or arguments are invalid. The message names the offending setting."""


class MissingDependencyError(TracSeqError, ImportError):
    """An optional dependency is not installed.

    The message names the missing package and the extra that provides it, e.g.
    ``pip install 'tracseq-kit[local]'``.
    """

    def __init__(self, package: str, *, extra: str, purpose: str) -> None:
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed; "
            f"install it with: pip install 'tracseq-kit[{extra}]'"
        )


class InfrastructureError(TracSeqError):
    """A backing server (PostgreSQL, Redis, Kafka, an HTTP dependency) misbehaved."""

    retriable = True


class EmbeddedServerError(InfrastructureError):
    """An embedded server from :mod:`tracseq_kit.local` failed to start or stop."""

    retriable = False


class DependencyUnavailableError(InfrastructureError):
    """A server could not be reached within the allowed time."""


class ResilienceError(TracSeqError):
    """Base class of errors raised by the resilience primitives."""


class CircuitOpenError(ResilienceError):
    """A circuit breaker rejected the call without running it.

    ``remaining`` is the number of seconds until the breaker will next admit a probe
    (0.0 when it is half-open and all probe slots are taken); gateways send it as
    ``Retry-After``.
    """

    retriable = True

    def __init__(self, name: str, *, remaining: float, state: str = "open") -> None:
        self.name = name
        self.remaining = max(0.0, remaining)
        self.state = state
        super().__init__(
            f"circuit breaker {name!r} is {state}; next probe in {self.remaining:.3f}s"
        )


class BulkheadFullError(ResilienceError):
    """A bulkhead had no free permit within its maximum wait."""

    retriable = True


class DeadlineExceededError(ResilienceError, TimeoutError):
    """The deadline of the current call passed before the work finished."""


class RetryBudgetExhaustedError(ResilienceError):
    """A retry was refused because the retry budget is spent (prevents retry storms)."""


class RateLimitExceededError(TracSeqError):
    """A rate limiter rejected the request.

    ``retry_after`` is the number of seconds after which the same request would be
    admitted; ``policy`` names the violated limit.
    """

    retriable = True

    def __init__(self, policy: str, *, retry_after: float) -> None:
        self.policy = policy
        self.retry_after = max(0.0, retry_after)
        super().__init__(f"rate limit {policy!r} exceeded; retry in {self.retry_after:.3f}s")


class SheetError(TracSeqError, ValueError):
    """A sample sheet cannot be read at all: empty, not UTF-8, not a spreadsheet.

    Problems with individual cells are not errors: they are reported, all of them, in a
    :class:`~tracseq_kit.schemas.SubmissionReport`. Services answer 422.
    """


class SheetTooLargeError(SheetError):
    """A sample sheet exceeds the byte or row limit. Services answer 413."""


class EventError(TracSeqError):
    """Base class of errors raised by :mod:`tracseq_kit.events`."""


class EventEncodingError(EventError, ValueError):
    """An event could not be encoded to, or decoded from, its wire form."""


class UnknownEventTypeError(EventError, LookupError):
    """No payload model is registered for the event's ``type``."""


class DeadLetterNotFoundError(EventError, LookupError):
    """No dead-lettered message at the given topic, partition and offset (it may have
    been removed by the topic's retention)."""


class PublishError(EventError):
    """An event could not be published to the broker."""

    retriable = True


class PublishTimeoutError(PublishError, TimeoutError):
    """The broker did not acknowledge a publish within the allowed time."""


class EventSourcingError(TracSeqError):
    """Base class of errors raised by :mod:`tracseq_kit.eventsourcing`."""


class ConcurrencyError(EventSourcingError):
    """An append expected a stream version that is no longer current.

    Someone else appended to ``stream_id`` since it was read: ``expected`` is the
    version the caller asked for (an int, or ``"no stream"`` / ``"stream exists"``) and
    ``actual`` the version found (0: the stream does not exist). Nothing was written.
    Reload the aggregate and decide again; a service answers 409 Conflict. Retrying the
    same append cannot succeed, so this is not ``retriable``.
    """

    def __init__(self, stream_id: str, *, expected: int | str, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        if expected == "no stream":
            wanted = "no stream"
        elif expected == "stream exists":
            wanted = "an existing stream"
        else:
            wanted = f"version {expected}"
        found = "does not exist" if actual == 0 else f"is at version {actual}"
        super().__init__(
            f"stream {stream_id!r} {found} but the append expected {wanted}: it changed "
            "since it was read; reload it and decide again"
        )


class DuplicateEventError(EventSourcingError):
    """An appended event has an id the store already holds (``event_id``).

    The same events were appended twice, e.g. a retried request whose first attempt
    committed. Nothing of the second append was written.
    """

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id
        super().__init__(f"event {event_id!r} is already in the event store; nothing was written")


class AggregateNotFoundError(EventSourcingError, LookupError):
    """No stream exists for the aggregate id; services answer 404.

    ``stream_type`` names the kind of aggregate (e.g. ``"sample"``), ``aggregate_id``
    the id that was asked for.
    """

    def __init__(self, stream_type: str, aggregate_id: str) -> None:
        self.stream_type = stream_type
        self.aggregate_id = aggregate_id
        super().__init__(f"no {stream_type} with id {aggregate_id!r}")


class CommandRejectedError(EventSourcingError):
    """A command is not allowed in the aggregate's current state; services answer 409.

    ``command`` names the refused step, ``state`` the aggregate's current state (its
    ``status`` when it has one), ``reason`` says why, ``allowed`` lists the states the
    command is allowed from (empty when the guard is not about states). No event was
    recorded.
    """

    def __init__(
        self,
        *,
        stream_type: str,
        aggregate_id: str,
        command: str,
        state: str | None,
        reason: str,
        allowed: tuple[str, ...] = (),
    ) -> None:
        self.stream_type = stream_type
        self.aggregate_id = aggregate_id
        self.command = command
        self.state = state
        self.reason = reason
        self.allowed = allowed
        super().__init__(f"cannot {command} {stream_type} {aggregate_id!r}: {reason}")


class APIError(TracSeqError):
    """A call of the typed client (:mod:`tracseq_kit.client`) failed.

    ``method`` and ``url`` name the request. Subclasses say whether an answer came.
    """

    def __init__(self, message: str, *, method: str = "", url: str = "") -> None:
        self.method = method
        self.url = url
        super().__init__(message)


class APIConnectionError(APIError):
    """No response arrived: the connection was refused or reset, or the name is unknown.

    Check the base URL (``TRACSEQ_BASE_URL``) and that the service is running.
    """

    retriable = True


class APITimeoutError(APIConnectionError, TimeoutError):
    """No response arrived within the timeout (or the call's deadline)."""


class APIStatusError(APIError):
    """The server answered with an error status.

    ``status`` is the HTTP status, ``request_id`` the server's ``X-Request-ID`` (quote
    it when asking for help), ``problem`` the RFC 9457 problem document (``{}`` if the
    body was not one), ``detail`` its human-readable explanation and ``response`` the
    :class:`httpx.Response`.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        request_id: str | None = None,
        problem: dict[str, Any] | None = None,
        response: Any = None,
        method: str = "",
        url: str = "",
    ) -> None:
        self.status = status
        self.request_id = request_id
        self.problem: dict[str, Any] = problem or {}
        detail = self.problem.get("detail")
        self.detail: str | None = detail if isinstance(detail, str) else None
        self.response = response
        super().__init__(message, method=method, url=url)


class BadRequestError(APIStatusError):
    """400: the request was malformed (bad JSON, a bad cursor, an unreadable header)."""


class AuthenticationError(APIStatusError):
    """401: no or invalid credentials; set ``TRACSEQ_API_TOKEN`` or pass ``token=``."""


class PermissionDeniedError(APIStatusError):
    """403: the credentials are valid but do not allow this call."""


class NotFoundError(APIStatusError):
    """404: the template, version, event or job does not exist."""


class RequestTimeoutError(APIStatusError):
    """408: the server gave up waiting for the request."""

    retriable = True


class ConflictError(APIStatusError):
    """409: the call conflicts with the resource's state (e.g. editing an archived template)."""


class PayloadTooLargeError(APIStatusError):
    """413: the body (e.g. a sample sheet) exceeds the server's size or row limit."""


class UnprocessableEntityError(APIStatusError):
    """422: the request is well-formed but invalid.

    ``errors`` lists the field errors as ``{"field", "message", "type"}`` dicts (empty
    when the server gave only a ``detail``).
    """

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The field errors from the problem document."""
        found = self.problem.get("errors")
        return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


class TooManyRequestsError(APIStatusError):
    """429: a rate limit was hit; ``retry_after`` is the server's wait in seconds."""

    retriable = True

    @property
    def retry_after(self) -> float | None:
        """The ``Retry-After`` wait in seconds, or None if the server sent none."""
        return _retry_after(self.response)


class ServerError(APIStatusError):
    """5xx: the server or a service behind the gateway failed; often passes on retry."""

    retriable = True

    @property
    def retry_after(self) -> float | None:
        """The ``Retry-After`` wait in seconds (e.g. an open breaker's 503), or None."""
        return _retry_after(self.response)


def _retry_after(response: Any) -> float | None:
    value = getattr(response, "headers", {}).get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from TracSeq services; fall back to backoff
