"""Request body size limit, checked on ``Content-Length`` and again while streaming."""

from __future__ import annotations

from starlette.exceptions import HTTPException

from tracseq_kit.asgi._context import request_id_var
from tracseq_kit.asgi._problem import send_problem
from tracseq_kit.asgi._types import ASGIApp, Message, Receive, Scope, Send


class RequestBodyTooLargeError(HTTPException):
    """Raised from ``receive`` when the streamed body passes the limit.

    A Starlette ``HTTPException`` (413) so that frameworks which wrap errors raised while
    parsing a body (FastAPI turns other exceptions into 400) let it through unchanged.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(413, f"The request body is larger than the limit of {limit} bytes.")


class BodySizeLimitMiddleware:
    """Refuse request bodies larger than ``max_bytes`` with ``413`` problem+json.

    A ``Content-Length`` above the limit is refused before the application runs. Bodies
    without a length (chunked) are counted as they stream: the ``receive`` call that passes
    the limit raises :class:`RequestBodyTooLargeError`, and if the application lets it
    escape before it has started a response, the 413 is sent here. Pure ASGI: works in
    front of any ASGI application.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        may_have_body = scope.get("http_version") not in ("1.0", "1.1")
        for key, value in scope["headers"]:
            if key == b"content-length":
                may_have_body = True
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await _send_413(send, scope, limit)
                    return
            elif key == b"transfer-encoding":
                may_have_body = True
        if not may_have_body:  # HTTP/1.x without Content-Length or Transfer-Encoding
            await self.app(scope, receive, send)
            return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestBodyTooLargeError(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except RequestBodyTooLargeError:
            if started:
                raise
            await _send_413(send, scope, limit)


async def _send_413(send: Send, scope: Scope, limit: int) -> None:
    request_id = request_id_var.get()
    await send_problem(
        send,
        413,
        detail=f"The request body is larger than the limit of {limit} bytes.",
        instance=scope["path"],
        extensions={"request_id": request_id, "max_bytes": limit}
        if request_id
        else {"max_bytes": limit},
        headers=[(b"connection", b"close")],
    )
