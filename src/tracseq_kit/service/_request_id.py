"""Request-id middleware: accept a well-formed incoming id or make one, echo it, expose it."""

from __future__ import annotations

import os
import re

from tracseq_kit.service._types import ASGIApp, Message, Receive, Scope, Send
from tracseq_kit.telemetry._context import request_id_var

_VALID = re.compile(rb"[A-Za-z0-9._-]{1,128}")


class RequestIdMiddleware:
    """Give every HTTP request an id, echoed in the response and visible to logs and spans.

    An incoming ``header`` (default ``X-Request-ID``) is kept when it is 1-128 characters
    of ``[A-Za-z0-9._-]``; anything else (missing, too long, other characters, which could
    forge log lines) is replaced by a new random id. The id is available as
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
                if _VALID.fullmatch(value):
                    request_id = value.decode("ascii")
                break
        if request_id is None:
            request_id = os.urandom(16).hex()  # 128 random bits, like a UUID4
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
