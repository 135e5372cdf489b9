"""One log line per HTTP request, written while the request's span is still current."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from tracseq_kit.asgi._types import ASGIApp, Message, Receive, Scope, Send, route_of

ACCESS_LOGGER = "tracseq_kit.access"


class AccessLogMiddleware:
    """Log ``{method} {path} {status}`` at INFO on ``tracseq_kit.access`` after each request.

    The record carries ``http.request.method``, ``url.path``, ``http.route``,
    ``http.response.status_code`` and ``duration_ms`` as ``extra`` fields; placed inside
    :class:`TracingMiddleware` and :class:`RequestIdMiddleware`, the JSON formatter adds the
    request, trace and span ids. An exception escaping the application is logged as 500.
    Paths in ``excluded_paths`` (health probes, ``/metrics``) are not logged.
    Pure ASGI: works in front of any ASGI application.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        logger: logging.Logger | None = None,
        excluded_paths: Iterable[str] = (),
    ) -> None:
        self.app = app
        self._logger = logger or logging.getLogger(ACCESS_LOGGER)
        self._excluded = frozenset(excluded_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in self._excluded
            or not self._logger.isEnabledFor(logging.INFO)
        ):
            await self.app(scope, receive, send)
            return
        status_code = 500
        start = time.perf_counter()

        async def send_recording_status(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            duration_ms = round((time.perf_counter() - start) * 1000, 3)
            method, path = scope["method"], scope["path"]
            # makeRecord + handle is what Logger.info does, minus the stack walk that
            # finds the caller (always this line).
            record = self._logger.makeRecord(
                self._logger.name,
                logging.INFO,
                __file__,
                0,
                "%s %s %d",
                (method, path, status_code),
                None,
                extra={
                    "http.request.method": method,
                    "url.path": path,
                    "http.route": route_of(scope),
                    "http.response.status_code": status_code,
                    "duration_ms": duration_ms,
                },
            )
            self._logger.handle(record)
