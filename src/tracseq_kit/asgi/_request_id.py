"""Request ids: one rule for what is accepted, one way to make a new one, one middleware.

The gateway and the service chassis apply the same rule, so an id a client sends (or the
gateway makes) appears unchanged in every log line along the way.
"""

from __future__ import annotations

import os
import random
import re
from typing import Final

from tracseq_kit.asgi._context import request_id_var
from tracseq_kit.asgi._types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "REQUEST_ID_PATTERN",
    "RequestIdMiddleware",
    "new_request_id",
    "new_request_id_bytes",
    "new_traceparent",
    "valid_request_id",
]

REQUEST_ID_PATTERN: Final = "[A-Za-z0-9._:-]{1,128}"
"""What an incoming request id may look like: anything else (control characters, spaces,
quotes that could forge log lines, or an overlong value) is replaced by a new id."""

_VALID = re.compile(REQUEST_ID_PATTERN.encode())

# Ids must be unique, not secret: the Mersenne Twister (as OpenTelemetry's own id
# generator uses) is several times cheaper per request than os.urandom.
_rng = random.Random(random.SystemRandom().getrandbits(64))


def _reseed() -> None:  # forked workers must not repeat their parent's ids
    _rng.seed(random.SystemRandom().getrandbits(64))


os.register_at_fork(after_in_child=_reseed)


def valid_request_id(value: bytes) -> bool:
    """Whether a client-sent request id may be kept (see :data:`REQUEST_ID_PATTERN`)."""
    return _VALID.fullmatch(value) is not None  # fullmatch: "$" would allow a final "\n"


def new_request_id() -> str:
    """A fresh id: 32 hex digits (128 random bits)."""
    return f"{_rng.getrandbits(128):032x}"


def new_request_id_bytes() -> bytes:
    """:func:`new_request_id` as ASCII bytes, for code that writes raw headers."""
    return b"%032x" % _rng.getrandbits(128)


def new_traceparent() -> bytes:
    """A new W3C ``traceparent`` value starting a sampled trace (for untraced callers)."""
    return b"00-%032x-%016x-01" % (_rng.getrandbits(128) or 1, _rng.getrandbits(64) or 1)


class RequestIdMiddleware:
    """Give every HTTP request an id, echoed in the response and visible to logs and spans.

    An incoming ``header`` (default ``X-Request-ID``) is kept when it matches
    :data:`REQUEST_ID_PATTERN`; anything else (missing, too long, other characters) is
    replaced by :func:`new_request_id`. The id is available as
    :func:`tracseq_kit.telemetry.current_request_id` and ``scope["state"]["request_id"]``.
    Pure ASGI: works in front of any ASGI application.
    """

    def __init__(self, app: ASGIApp, *, header: str = "X-Request-ID") -> None:
        self.app = app
        self._header = header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for key, value in scope["headers"]:
            if key == self._header:
                if valid_request_id(value):
                    request_id = value.decode("ascii")
                break
        if request_id is None:
            request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        raw = (self._header, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if any(h[0].lower() == raw[0] for h in headers):  # the app set its own
                    headers = [h for h in headers if h[0].lower() != raw[0]]
                headers.append(raw)
                message["headers"] = headers
            await send(message)

        token = request_id_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
