"""RFC 9457 problem details (``application/problem+json``) for pure ASGI code.

Used by every middleware and endpoint that answers an error, in services and in the
gateway alike, so all errors share one shape: ``type``, ``title``, ``status``,
``detail``, ``instance`` and extension members such as ``request_id``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from tracseq_kit.asgi._context import request_id_var
from tracseq_kit.asgi._types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "INTERNAL_ERROR_DETAIL",
    "PROBLEM_CONTENT_TYPE",
    "ProblemDetailsMiddleware",
    "problem_body",
    "request_id_extension",
    "send_problem",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"
"""The media type of RFC 9457 problem documents."""

INTERNAL_ERROR_DETAIL = (
    "The server failed to complete the request. Quote the request id when reporting it."
)

logger = logging.getLogger("tracseq_kit.service")


def problem_body(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str = "about:blank",
    instance: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> bytes:
    """Return the encoded problem document for ``status``.

    ``title`` defaults to the HTTP reason phrase. Extension members may not override
    the standard members.
    """
    doc: dict[str, Any] = dict(extensions or {})
    doc.update(
        type=type_,
        title=title or _reason(status),
        status=status,
    )
    if detail is not None:
        doc["detail"] = detail
    if instance is not None:
        doc["instance"] = instance
    return json.dumps(doc, separators=(",", ":"), default=str).encode()


async def send_problem(
    send: Send,
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str = "about:blank",
    instance: str | None = None,
    extensions: Mapping[str, Any] | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Send a complete problem+json response through an ASGI ``send`` callable."""
    body = problem_body(
        status, title=title, detail=detail, type_=type_, instance=instance, extensions=extensions
    )
    raw_headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class ProblemDetailsMiddleware:
    """Turn any exception that escapes the application into a 500 problem+json response.

    The exception and its traceback are logged server-side on ``tracseq_kit.service``;
    the client gets only a fixed message and the request id. If the response had already
    started, the exception is logged and re-raised so the server aborts the connection.
    Pure ASGI: works in front of any ASGI application.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error serving %s %s", scope["method"], scope["path"])
            if started:
                raise
            await send_problem(
                send,
                500,
                detail=INTERNAL_ERROR_DETAIL,
                instance=scope["path"],
                extensions=request_id_extension(),
            )


def request_id_extension() -> dict[str, Any]:
    """``{"request_id": ...}`` for the request being served, or ``{}`` outside one."""
    request_id = request_id_var.get()
    return {"request_id": request_id} if request_id else {}


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
