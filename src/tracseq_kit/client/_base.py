"""What the sync and async clients share: configuration, request building, error mapping
and retry decisions. Nothing here does I/O, so both clients behave the same."""

from __future__ import annotations

import json
import os
import platform
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from tracseq_kit._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ConflictError,
    DeadlineExceededError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RequestTimeoutError,
    ServerError,
    TooManyRequestsError,
    UnprocessableEntityError,
)
from tracseq_kit._version import __version__
from tracseq_kit.resilience import (
    DEADLINE_HEADER,
    CircuitBreaker,
    CircuitBreakerRegistry,
    Retry,
    RetryBudget,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "ENV_BASE_URL",
    "ENV_TOKEN",
    "NOT_GIVEN",
    "BaseClient",
    "Call",
    "NotGiven",
    "Options",
    "Progress",
    "default_retry",
]

T = TypeVar("T")

_BREAKERS = CircuitBreakerRegistry(minimum_calls=10, failure_rate_threshold=0.5, wait_duration=5.0)
"""``breaker=True``: one breaker per base URL, shared by every client of the process."""

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called as an upload or a replay advances."""

_UPLOAD_CHUNK: Final = 64 * 1024

ENV_BASE_URL: Final = "TRACSEQ_BASE_URL"
ENV_TOKEN: Final = "TRACSEQ_API_TOKEN"
DEFAULT_BASE_URL: Final = "http://127.0.0.1:8000"
"""The gateway of the local stack that ``tracseq dev`` runs."""

USER_AGENT: Final = (
    f"tracseq-kit/{__version__} (python {platform.python_version()}; httpx {httpx.__version__})"
)

_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: TooManyRequestsError,
}


class NotGiven:
    """The type of :data:`NOT_GIVEN`: "keep the current value" in ``with_options``."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False


NOT_GIVEN: Final = NotGiven()


def _retriable(exc: BaseException) -> bool:
    """The client retries its own API errors that say so, nothing else (an open local
    breaker fails fast instead of waiting)."""
    return isinstance(exc, APIError) and exc.retriable


def default_retry() -> Retry:
    """The client's default: 4 attempts, backoff 0.25 s doubling to 8 s with full jitter,
    ``Retry-After`` honoured up to 30 s, retries capped at 20% of calls (plus 10/s)."""
    return Retry(
        attempts=4,
        initial_delay=0.25,
        max_delay=8.0,
        max_retry_after=30.0,
        retry_on=_retriable,
        budget=RetryBudget(ratio=0.2, min_per_second=10.0),
    )


@dataclass(frozen=True, slots=True)
class Options:
    """A client's settings; ``with_options`` derives a copy with some replaced."""

    base_url: str
    token: str | None = field(repr=False)
    timeout: float
    retry: Retry | None
    breaker: CircuitBreaker | None
    deadline: float | None
    headers: tuple[tuple[str, str], ...]
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One API operation, described once for both clients.

    ``write`` calls get an ``Idempotency-Key`` generated once and reused by every retry.
    ``replay_safe`` false means the server has no way to deduplicate the call, so it is
    retried only when the request certainly did not reach the server (connect errors,
    429). ``accept_status`` statuses are returned instead of raised (``/health``'s 503).
    """

    method: str
    path: str
    params: Mapping[str, Any] | None = None
    body: Any = None
    content: bytes | None = None
    content_type: str | None = None
    write: bool = False
    replay_safe: bool = True
    accept_status: frozenset[int] = frozenset()
    headers: Mapping[str, str] | None = None
    progress: Progress | None = None


class _SyncUpload:
    """Request content that reports ``progress(sent, total)``; each attempt re-reads it."""

    def __init__(self, data: bytes, progress: Progress) -> None:
        self._data = data
        self._progress = progress

    def __iter__(self) -> Iterator[bytes]:
        view, total = memoryview(self._data), len(self._data)
        self._progress(0, total)
        for start in range(0, total, _UPLOAD_CHUNK):
            chunk = bytes(view[start : start + _UPLOAD_CHUNK])
            yield chunk
            self._progress(start + len(chunk), total)


class _AsyncUpload:
    """:class:`_SyncUpload` for ``httpx.AsyncClient`` (which takes only async iterables)."""

    def __init__(self, data: bytes, progress: Progress) -> None:
        self._chunks = _SyncUpload(data, progress)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


def _named(headers: Mapping[str, str] | None, name: str) -> str | None:
    """The value of header ``name`` in ``headers``, whatever the case of its name."""
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def _check_durations(*, timeout: float, deadline: float | None) -> None:
    if timeout <= 0:
        raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
    if deadline is not None and deadline <= 0:
        raise ConfigurationError(f"deadline must be > 0 seconds, got {deadline!r}")


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue
        out[key] = getattr(value, "value", value)
        if hasattr(value, "isoformat"):
            out[key] = value.isoformat()
    return out


def encode_body(body: Any) -> bytes:
    """JSON bytes of a pydantic model, a mapping or a list (models inside allowed)."""
    if isinstance(body, BaseModel):
        return body.model_dump_json(exclude_unset=True).encode()
    try:
        return json.dumps(
            body,
            separators=(",", ":"),
            default=lambda o: o.model_dump(mode="json") if isinstance(o, BaseModel) else str(o),
        ).encode()
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"the request body cannot be encoded as JSON: {exc}") from None


class BaseClient:
    """Configuration and decisions of :class:`TracSeqClient` / :class:`AsyncTracSeqClient`."""

    _upload: type[_SyncUpload] | type[_AsyncUpload] = _SyncUpload

    _options: Options
    _headers: dict[str, str]
    _http: Any

    @staticmethod
    def _resolve(
        base_url: str | None,
        *,
        token: str | None,
        timeout: float,
        retry: Retry | NotGiven | None,
        breaker: CircuitBreaker | bool,
        deadline: float | None,
        headers: Mapping[str, str] | None,
    ) -> Options:
        url = base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            source = "base_url" if base_url else ENV_BASE_URL
            raise ConfigurationError(
                f"{source} must be an http(s) URL such as http://127.0.0.1:8000, got {url!r}"
            )
        _check_durations(timeout=timeout, deadline=deadline)
        if breaker is True:
            breaker = _BREAKERS.get(f"client:{url.rstrip('/')}")
        return Options(
            base_url=url.rstrip("/"),
            token=token if token is not None else os.environ.get(ENV_TOKEN) or None,
            timeout=timeout,
            retry=default_retry() if isinstance(retry, NotGiven) else retry,
            breaker=breaker or None,
            deadline=deadline,
            headers=tuple((headers or {}).items()),
        )

    def _derive(self, **changes: Any) -> Options:
        given = {k: v for k, v in changes.items() if not isinstance(v, NotGiven)}
        if "headers" in given:
            given["headers"] = self._options.headers + tuple((given["headers"] or {}).items())
        _check_durations(timeout=given.get("timeout", 1), deadline=given.get("deadline"))
        return replace(self._options, **given)

    def with_options(
        self,
        *,
        timeout: float | NotGiven = NOT_GIVEN,
        deadline: float | NotGiven | None = NOT_GIVEN,
        retry: Retry | NotGiven | None = NOT_GIVEN,
        headers: Mapping[str, str] | NotGiven = NOT_GIVEN,
        idempotency_key: str | NotGiven | None = NOT_GIVEN,
    ) -> Self:
        """A client with some options replaced, sharing this one's connections.

        ``client.with_options(deadline=2).templates.get(...)``. ``idempotency_key``
        fixes the key of the next writes (e.g. to resume a write after a crash).
        Raises :class:`~tracseq_kit.ConfigurationError` for a bad timeout or deadline.
        """
        derived = object.__new__(type(self))
        derived._options = self._derive(
            timeout=timeout,
            deadline=deadline,
            retry=retry,
            headers=headers,
            idempotency_key=idempotency_key,
        )
        derived._bind(self._http, owns_http=False)
        return derived

    def _bind(self, http: Any, *, owns_http: bool) -> None:
        """Attach the HTTP client and the resources (``templates``, ``events``)."""
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        """The URL every path is appended to (the gateway, or one service)."""
        return self._options.base_url

    def __repr__(self) -> str:
        token = ", token=***" if self._options.token else ""
        return f"<{type(self).__name__} {self._options.base_url!r}{token}>"

    # ------------------------------------------------------------------ requests

    def _default_headers(self) -> dict[str, str]:
        # names lower-cased: a caller's "Accept" replaces ours instead of going twice
        headers = {"user-agent": USER_AGENT, "accept": "application/json"}
        if self._options.token:
            headers["authorization"] = f"Bearer {self._options.token}"
        headers.update((name.lower(), value) for name, value in self._options.headers)
        return headers

    def _build(self, call: Call, key: str | None, deadline_at: float | None) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client.build_request`` for one attempt."""
        headers = dict(self._headers)
        content = call.content
        if call.body is not None:
            content = encode_body(call.body)
            headers["content-type"] = "application/json"
        elif call.content_type:
            headers["content-type"] = call.content_type
        timeout = self._options.timeout
        if deadline_at is not None:
            left = deadline_at - time.monotonic()
            headers[DEADLINE_HEADER] = str(max(0, int(left * 1000)))
            timeout = max(0.001, min(timeout, left))
        if call.headers:
            headers.update((name.lower(), value) for name, value in call.headers.items())
        if key is not None:  # one key per logical write, whoever named it
            headers["idempotency-key"] = key
        if call.progress is not None and content:
            # A set Content-Length keeps httpx from switching to chunked encoding.
            headers["content-length"] = str(len(content))
            content = self._upload(content, call.progress)  # type: ignore[assignment]
        return {
            "method": call.method,
            "url": self._options.base_url + call.path,
            "params": _clean_params(call.params),
            "content": content,
            "headers": headers,
            "timeout": timeout,
        }

    def _key_for(self, call: Call) -> str | None:
        """The ``Idempotency-Key`` every attempt of ``call`` sends: the caller's own
        (in the call's or the client's headers, any case), else one made for it."""
        given = _named(call.headers, "idempotency-key") or _named(
            dict(self._options.headers), "idempotency-key"
        )
        if given is not None:
            return given
        if not call.write:
            return None
        return self._options.idempotency_key or f"tsk-{uuid.uuid4().hex}"

    def _deadline_at(self, inherited: float | None = None) -> float | None:
        """The monotonic time this call must end by (its own deadline or the caller's)."""
        ends = [] if inherited is None else [inherited]
        if self._options.deadline is not None:
            ends.append(time.monotonic() + self._options.deadline)
        return min(ends) if ends else None

    @staticmethod
    def _check_deadline(deadline_at: float | None, attempt: int, request: Call) -> None:
        if deadline_at is not None and time.monotonic() >= deadline_at:
            raise DeadlineExceededError(
                f"{request.method} {request.path}: the deadline passed after {attempt - 1} "
                "attempt(s)"
            )

    # ------------------------------------------------------------------ responses

    @staticmethod
    def _transport_error(exc: httpx.TransportError, request: httpx.Request) -> APIError:
        where = f"{request.method} {request.url}"
        if isinstance(exc, httpx.TimeoutException):
            return APITimeoutError(
                f"{where}: no response in time ({type(exc).__name__})",
                method=request.method,
                url=str(request.url),
            )
        reason = str(exc) or type(exc).__name__
        return APIConnectionError(
            f"{where}: {reason}; is the server running and the base URL right?",
            method=request.method,
            url=str(request.url),
        )

    @staticmethod
    def _status_error(response: httpx.Response) -> APIStatusError:
        status = response.status_code
        problem: dict[str, Any] = {}
        try:
            parsed = json.loads(response.content) if response.content else {}
            problem = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            pass
        request_id = response.headers.get("x-request-id") or problem.get("request_id")
        detail = problem.get("detail") or problem.get("title") or response.reason_phrase
        if not problem and response.content:
            detail = response.text[:200]
        message = f"{status} {response.reason_phrase}: {detail}"
        if request_id:
            message += f" (request id {request_id})"
        cls = _STATUS_ERRORS.get(status) or (ServerError if status >= 500 else APIStatusError)
        return cls(
            message,
            status=status,
            request_id=request_id,
            problem=problem,
            response=response,
            method=response.request.method,
            url=str(response.request.url),
        )

    @staticmethod
    def _counts_against_breaker(exc: BaseException | None) -> bool:
        """Failures of the server, not of the caller: connection trouble and 5xx."""
        return isinstance(exc, APIConnectionError | ServerError)

    def _retry_delay(
        self, exc: Exception, call: Call, attempt: int, started: float, deadline_at: float | None
    ) -> float | None:
        retry = self._options.retry
        if retry is None:
            return None
        if not call.replay_safe and not (
            isinstance(exc, TooManyRequestsError)
            or (
                isinstance(exc, APIConnectionError)
                and isinstance(exc.__cause__, httpx.ConnectError)
            )
        ):
            return None
        delay = retry.next_delay(exc, attempt=attempt, started=started)
        if (
            delay is not None
            and deadline_at is not None
            and time.monotonic() + delay >= deadline_at
        ):
            exc.add_note("not retried: the call's deadline would pass")
            return None
        return delay


def parse(model: Callable[[bytes], T], response: httpx.Response) -> T:
    """Parse a success body, or raise :class:`APIError` saying what came back instead."""
    try:
        return model(response.content)
    except (ValidationError, ValueError) as exc:
        raise APIError(
            f"{response.request.method} {response.request.url}: unexpected response body "
            f"({response.headers.get('content-type', 'no content type')}): {exc}",
            method=response.request.method,
            url=str(response.request.url),
        ) from None


def parse_sse(model: Callable[[bytes], T], data: str, response: httpx.Response) -> T:
    """Parse one Server-Sent Event's data like a response body (same errors as parse)."""
    return parse(model, httpx.Response(200, content=data.encode(), request=response.request))
