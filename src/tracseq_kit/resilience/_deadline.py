"""Context-local deadlines that nested calls respect and that travel in HTTP headers.

The deadline is an absolute point on the monotonic clock held in a context variable,
so it follows the task (and tasks it starts) through every await. Across processes it
travels as the remaining time in milliseconds in the ``X-Request-Deadline-Ms``
header: a gateway sends what is left of its budget, a service reads it back.
"""

from __future__ import annotations

import contextvars
import math
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import anyio

from tracseq_kit._exceptions import ConfigurationError, DeadlineExceededError

__all__ = [
    "DEADLINE_HEADER",
    "deadline",
    "deadline_from_headers",
    "deadline_to_headers",
    "remaining",
]

DEADLINE_HEADER = "x-request-deadline-ms"
"""Header carrying the remaining time of the caller's deadline, in whole milliseconds."""

_DIGITS = re.compile(r"[0-9]{1,12}")

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "tracseq_deadline", default=None
)


def remaining() -> float | None:
    """Seconds left before the current deadline (may be negative), or None if none."""
    at = _deadline.get()
    return None if at is None else at - time.monotonic()


@contextmanager
def deadline(seconds: float | None) -> Iterator[float | None]:
    """Limit the block to ``seconds`` (or to an enclosing, earlier deadline).

    Yields the seconds actually allowed. Code inside is cancelled when the time is up
    and the block raises :class:`~tracseq_kit.DeadlineExceededError` (a TimeoutError).
    ``None`` keeps the enclosing deadline, if any. Use it in async code (it relies on an
    anyio cancel scope). Raises :class:`~tracseq_kit.ConfigurationError` for a
    negative or NaN ``seconds``.
    """
    if seconds is not None and (math.isnan(seconds) or seconds < 0):
        raise ConfigurationError(f"a deadline needs seconds >= 0, got {seconds!r}")
    now = time.monotonic()
    outer = _deadline.get()
    at = outer if seconds is None else now + seconds
    if outer is not None and at is not None:
        at = min(at, outer)
    token = _deadline.set(at)
    try:
        with anyio.CancelScope(deadline=math.inf if at is None else at) as scope:
            yield None if at is None else at - now
        if scope.cancelled_caught:
            raise DeadlineExceededError(f"deadline exceeded after {time.monotonic() - now:.3f}s")
    finally:
        _deadline.reset(token)


def deadline_to_headers() -> dict[str, str]:
    """The header to send so the callee inherits the current deadline ({} if none)."""
    left = remaining()
    if left is None:
        return {}
    return {DEADLINE_HEADER: str(max(0, int(left * 1000)))}


def deadline_from_headers(
    headers: Mapping[str, str], *, maximum: float = 300.0, header: str = DEADLINE_HEADER
) -> float | None:
    """Seconds allowed by an incoming ``X-Request-Deadline-Ms`` (or ``header``) value.

    Header names are matched case-insensitively. A missing, malformed or negative value
    is ignored (None; also when the header is absent), so a bad header never fails a
    request; values are clamped to
    ``maximum`` seconds so a caller cannot hold a service forever.
    """
    raw = None
    header = header.lower()
    for key, value in headers.items():
        if key.lower() == header:
            raw = value
            break
    if raw is None:
        return None
    raw = raw.strip()
    if not _DIGITS.fullmatch(raw):  # str.isdigit() would accept '²'
        return None
    return min(int(raw) / 1000.0, maximum)
