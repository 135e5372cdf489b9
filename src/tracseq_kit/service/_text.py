"""Text without NUL: what a service's contract promises and PostgreSQL can store.

PostgreSQL stores no NUL character, in ``text`` or ``jsonb``; a request carrying one
would fail deep in a handler (or worse, succeed where the value is not stored). The
contract (:func:`~tracseq_kit.service.install_contract`) says every string is NUL-free;
this middleware makes it true at the door: a NUL in the query, the path or a JSON body
is a 422 problem naming where it was.
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException

from tracseq_kit.asgi._context import request_id_var
from tracseq_kit.asgi._problem import send_problem
from tracseq_kit.asgi._types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["NulTextError", "RejectNulMiddleware"]

# In JSON a NUL can only be written as the escape \u0000 (a raw one is a syntax error):
# an escape is one when an odd number of backslashes stands before "u0000".
_ESCAPED_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)
_OVERLAP = 8  # bytes kept between body chunks, so an escape cut in two is still seen


class NulTextError(HTTPException):
    """Raised from ``receive`` when a JSON body holds a NUL (answered 422)."""

    def __init__(self) -> None:
        super().__init__(422, "text in the request body may not contain NUL (U+0000)")


class RejectNulMiddleware:
    """Refuse requests whose query, path or JSON body holds a NUL character (422).

    Pure ASGI; other bodies (files, forms) pass untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query: bytes = scope.get("query_string", b"")
        path: bytes = scope.get("raw_path") or b""
        for where, raw in (("query", query), ("path", path)):
            if b"%00" in raw or b"\x00" in raw:
                await send_problem(
                    send,
                    422,
                    detail=f"the request {where} may not contain NUL (%00)",
                    extensions=_request_id(),
                )
                return
        if not _is_json(scope):
            await self.app(scope, receive, send)
            return
        tail = b""

        async def checked_receive() -> Message:
            nonlocal tail
            message = await receive()
            if message["type"] == "http.request":
                chunk: bytes = message.get("body", b"")
                window = tail + chunk
                if b"u0000" in window.lower() and _ESCAPED_NUL.search(window):
                    raise NulTextError
                tail = _tail(window)
            return message

        await self.app(scope, checked_receive, send)


def _tail(window: bytes) -> bytes:
    """The end of ``window`` kept for the next chunk: at least ``_OVERLAP`` bytes, and
    the whole run of backslashes before them (their count decides what is an escape)."""
    start = max(len(window) - _OVERLAP, 0)
    while start > 0 and window[start - 1] == 0x5C:  # backslash
        start -= 1
    return window[start:]


def _is_json(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


def _request_id() -> dict[str, str]:
    request_id = request_id_var.get()
    return {"request_id": request_id} if request_id else {}
