"""Every error of a FastAPI/Starlette app becomes ``application/problem+json`` (RFC 9457)
carrying the request id. The pure-ASGI part lives in :mod:`tracseq_kit.asgi`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tracseq_kit.asgi._problem import (
    INTERNAL_ERROR_DETAIL,
    PROBLEM_CONTENT_TYPE,
    problem_body,
    request_id_extension,
)


def problem_response(
    status: int,
    *,
    detail: str | None = None,
    instance: str | None = None,
    title: str | None = None,
    extensions: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    """A Starlette ``Response`` holding a problem document with the current request id."""
    from starlette.responses import Response

    ext = {**request_id_extension(), **(extensions or {})}
    body = problem_body(status, title=title, detail=detail, instance=instance, extensions=ext)
    return Response(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers)


def field_path(loc: Sequence[int | str]) -> str:
    """``("body", "samples", 0, "name")`` → ``body.samples[0].name``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Any) -> list[str]:
    """Every method some route fully matches at the request's path (asked route by route
    through Starlette's public ``matches``, whatever the routes are nested in)."""
    from starlette.routing import Match

    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def install_exception_handlers(app: Any) -> None:
    """Register problem+json handlers for HTTP errors, validation errors and crashes on a
    Starlette or FastAPI ``app``."""
    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    async def http_error(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, HTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else None
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"Nothing is served at {request.url.path}."
        headers = exc.headers
        if exc.status_code == 405 and detail == "Method Not Allowed":
            detail = f"{request.method} is not allowed on {request.url.path}."
            # Starlette names the methods of the first route matching the path only;
            # FastAPI makes one route per method, so list every route's
            allowed = _allowed_methods(request)
            if allowed:
                headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        extensions = None if detail is not None or exc.detail is None else {"errors": exc.detail}
        return problem_response(
            exc.status_code,
            detail=detail,
            instance=request.url.path,
            extensions=extensions,
            headers=headers,
        )

    async def crash(request: Request, exc: Exception) -> Any:
        # Reached only for errors raised outside ProblemDetailsMiddleware (in middleware
        # wrapped around it); Starlette logs the traceback after this returns.
        return problem_response(500, detail=INTERNAL_ERROR_DETAIL, instance=request.url.path)

    async def replay(request: Request, exc: Exception) -> Any:
        from tracseq_kit.service._idempotency import IdempotencyReplay

        assert isinstance(exc, IdempotencyReplay)
        return exc.response()

    from tracseq_kit.service._idempotency import IdempotencyReplay

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(IdempotencyReplay, replay)
    _install_domain_errors(app)
    app.add_exception_handler(Exception, crash)
    try:
        from asyncpg.exceptions import DataError
    except ImportError:
        pass
    else:
        # PostgreSQL refusing a value the client sent (out of range, NUL byte, bad
        # encoding) is the client's mistake: 400 with the database's reason, not 500.
        async def bad_value(request: Request, exc: Exception) -> Any:
            return problem_response(
                400,
                detail=f"a value in the request is not acceptable: {exc}",
                instance=request.url.path,
            )

        app.add_exception_handler(DataError, bad_value)
    try:
        from fastapi.exceptions import RequestValidationError
    except ImportError:  # a plain Starlette app has no request validation
        return

    async def invalid_request(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, RequestValidationError)
        errors = list(exc.errors())
        for error in errors:
            if error.get("type") == "json_invalid":
                reason = (error.get("ctx") or {}).get("error", "malformed JSON")
                position = error["loc"][-1] if error.get("loc") else None
                where = f" at character {position}" if isinstance(position, int) else ""
                return problem_response(
                    400,
                    title="Malformed JSON",
                    detail=f"The request body is not valid JSON: {reason}{where}.",
                    instance=request.url.path,
                )
        items = [
            {
                "field": field_path(error.get("loc", ())),
                "message": error.get("msg", ""),
                "type": error.get("type", ""),
            }
            for error in errors
        ]
        fields = ", ".join(item["field"] for item in items)
        return problem_response(
            422,
            title="Validation failed",
            detail=f"The request is invalid: {fields}.",
            instance=request.url.path,
            extensions={"errors": json.loads(json.dumps(items, default=str))},
        )

    app.add_exception_handler(RequestValidationError, invalid_request)


def _install_domain_errors(app: Any) -> None:
    """The kit's domain errors that are the caller's to resolve, as problems: an aggregate
    that does not exist (404), a command its state refuses or a stream that changed since
    it was read (409), a duplicate event (409). Each problem carries the error's fields."""
    from tracseq_kit._exceptions import (
        AggregateNotFoundError,
        CommandRejectedError,
        ConcurrencyError,
        DuplicateEventError,
    )

    def extensions_of(exc: Exception) -> dict[str, Any]:
        if isinstance(exc, AggregateNotFoundError):
            return {"stream_type": exc.stream_type, "aggregate_id": exc.aggregate_id}
        if isinstance(exc, CommandRejectedError):
            return {
                "stream_type": exc.stream_type,
                "aggregate_id": exc.aggregate_id,
                "command": exc.command,
                "state": exc.state,
                "allowed": list(exc.allowed),
            }
        if isinstance(exc, ConcurrencyError):
            return {"stream_id": exc.stream_id, "actual_version": exc.actual}
        if isinstance(exc, DuplicateEventError):
            return {"event_id": exc.event_id}
        return {}

    async def domain_error(request: Any, exc: Exception) -> Any:
        status = 404 if isinstance(exc, AggregateNotFoundError) else 409
        return problem_response(
            status, detail=str(exc), instance=request.url.path, extensions=extensions_of(exc)
        )

    for error in (
        AggregateNotFoundError,
        CommandRejectedError,
        ConcurrencyError,
        DuplicateEventError,
    ):
        app.add_exception_handler(error, domain_error)
