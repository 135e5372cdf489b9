"""The OAuth 2.0 wire format: form parameters in, RFC 6749 §5 JSON out.

Token and device-authorization requests are ``application/x-www-form-urlencoded``; each
parameter may appear once (RFC 6749 §3.2). Errors are ``{"error", "error_description"}``
with 400, or 401 and ``WWW-Authenticate`` for ``invalid_client``. Every answer carries
``Cache-Control: no-store``: tokens must not sit in a cache.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from examples.auth_service.models import OAuthErrorBody, TokenResponse
from fastapi import Request
from fastapi.responses import JSONResponse

__all__ = [
    "FAILURES",
    "OAuthError",
    "client_authentication",
    "error_response",
    "form_body",
    "read_form",
    "token_response",
]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM = "application/x-www-form-urlencoded"
_MAX_VALUE = 4096

FAILURES = frozenset({"invalid_client", "invalid_grant"})
"""Errors that count as a failed attempt for brute-force protection."""


class OAuthError(Exception):
    """An OAuth error answer: ``error`` is the RFC code, ``description`` says why in
    words a person can act on (never which of a client id or secret was wrong)."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    @classmethod
    def invalid_client(cls) -> OAuthError:
        """The one answer for an unknown client, a wrong secret or a disabled client."""
        return cls("invalid_client", "client authentication failed", status=401)

    @classmethod
    def invalid_request(cls, description: str) -> OAuthError:
        return cls("invalid_request", description)

    @classmethod
    def invalid_grant(cls, description: str) -> OAuthError:
        return cls("invalid_grant", description)


def error_response(exc: OAuthError) -> JSONResponse:
    """The JSON answer of ``exc``."""
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="tracseq", charset="UTF-8"'
    body = OAuthErrorBody(error=exc.error, error_description=exc.description)
    return JSONResponse(body.model_dump(), status_code=exc.status, headers=headers)


def token_response(body: TokenResponse) -> JSONResponse:
    """A successful token answer, never cached."""
    return JSONResponse(body.model_dump(exclude_none=True), headers=NO_STORE)


async def read_form(request: Request) -> dict[str, str]:
    """The form parameters of ``request``. Raises :class:`OAuthError` (invalid_request)
    for another content type, a repeated parameter, a NUL or an overlong value."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != FORM:
        raise OAuthError.invalid_request(f"send the parameters as {FORM}")
    form = await request.form()
    out: dict[str, str] = {}
    for name in form:
        values = form.getlist(name)
        if len(values) != 1:
            raise OAuthError.invalid_request(f"parameter {name!r} appears more than once")
        value = values[0]
        if not isinstance(value, str) or "\x00" in value or len(value) > _MAX_VALUE:
            raise OAuthError.invalid_request(f"parameter {name!r} is not an acceptable value")
        out[name] = value
    return out


def client_authentication(
    headers: Mapping[str, str], form: Mapping[str, str]
) -> tuple[str | None, str | None]:
    """``(client_id, client_secret)`` from HTTP Basic (RFC 6749 §2.3.1: both parts
    form-urlencoded) or the body; a body ``client_id`` alone names a public client.
    Raises :class:`OAuthError` for a malformed header or credentials sent both ways."""
    authorization = headers.get("authorization")
    if authorization is None:
        return form.get("client_id"), form.get("client_secret")
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise OAuthError.invalid_client()
    if "client_secret" in form:
        raise OAuthError.invalid_request("send the client secret one way only, not both")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError.invalid_client() from None
    name, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthError.invalid_client()
    client_id = unquote_plus(name)
    if form.get("client_id", client_id) != client_id:
        raise OAuthError.invalid_request("client_id in the body differs from the one in Basic")
    return client_id, unquote_plus(secret)


def form_body(properties: dict[str, Any], required: list[str], description: str) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a form operation (for ``openapi_extra``)."""
    schema = {"type": "object", "properties": properties, "required": required}
    return {
        "requestBody": {
            "description": description,
            "required": True,
            "content": {FORM: {"schema": schema}},
        }
    }
