"""When may a request be sent again? One rule for the gateway and the typed client.

A request is only sent again when doing so cannot change the outcome: its method is
idempotent by definition (RFC 9110 §9.2.2), or it carries an ``Idempotency-Key`` the
server deduplicates on. Nothing else is ever re-sent, whatever the failure: not even a
request whose connection was refused (the caller cannot tell every such case from one
that reached the server, and a write that is retried behind the caller's back surprises
more than one that fails). A timed-out request is never re-sent: it may still be
running. A request whose body was streamed cannot be re-sent once part of it left.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["IDEMPOTENT_METHODS", "Failure", "may_resend"]

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""Methods whose repetition has the same effect as one request (RFC 9110 §9.2.2)."""

Failure = Literal["not_sent", "no_response", "bad_response", "status", "timeout"]
"""How an attempt failed:

- ``not_sent``: nothing reached the server (connection refused or not established);
- ``no_response``: the request was written, the connection closed before any response;
- ``bad_response``: the response was not valid HTTP/1.1;
- ``status``: the server answered 502, 503 or 504;
- ``timeout``: no response head in time.
"""


def may_resend(
    method: str,
    *,
    idempotency_key: bool,
    failure: Failure,
    budget: bool,
    replayable: bool = True,
) -> bool:
    """Whether a request that failed with ``failure`` may be sent once more.

    ``budget`` is whether the retry budget (if any) allows another attempt;
    ``replayable`` whether the request body can be produced again (a streamed body
    that was partly sent cannot; one that never left can). Pure: no clock, no I/O.
    """
    if failure == "timeout" or not budget:
        return False
    if not replayable and failure != "not_sent":
        return False
    return idempotency_key or method in IDEMPOTENT_METHODS
