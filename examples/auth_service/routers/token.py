"""``POST /oauth/token`` (RFC 6749 §3.2): access tokens for robots and people.

Not behind ``Idempotency-Key``: a repeated token request simply gets another token, and
remembering answers would store bearer tokens in clear.
"""

from __future__ import annotations

from typing import Any

from examples.auth_service import grants
from examples.auth_service.deps import BruteForceGuard, Context, Settings
from examples.auth_service.grants import DEVICE_CODE, GRANT_TYPES, TokenAnswer, TokenContext
from examples.auth_service.models import OAuthErrorBody, TokenResponse
from examples.auth_service.oauth import (
    FAILURES,
    OAuthError,
    client_authentication,
    error_response,
    form_body,
    read_form,
    token_response,
)
from fastapi import APIRouter, Request, Response

router = APIRouter(prefix="/oauth", tags=["oauth"])

_TEXT = {"type": "string", "maxLength": 4096}
TOKEN_FORM = form_body(
    {
        "grant_type": {"type": "string", "enum": list(GRANT_TYPES)},
        "client_id": _TEXT,
        "client_secret": _TEXT,
        "scope": {**_TEXT, "description": "space-separated scopes; default: all allowed"},
        "device_code": _TEXT,
        "refresh_token": _TEXT,
    },
    ["grant_type"],
    "Form parameters (RFC 6749). client_credentials: the client authenticates with HTTP "
    "Basic or client_id and client_secret here. device_code and refresh_token: client_id "
    "of the public client (the CLI) and the code or token.",
)

OAUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorBody, "description": "an OAuth error (RFC 6749 §5.2)"},
    401: {
        "model": OAuthErrorBody,
        "description": "invalid_client: the same answer for an unknown client, a wrong "
        "secret or a disabled client",
    },
}


async def _grant(
    ctx: TokenContext, form: dict[str, str], client_id: str | None, secret: str | None
) -> TokenAnswer:
    grant_type = form.get("grant_type")
    if grant_type is None:
        raise OAuthError.invalid_request("grant_type is required")
    if grant_type == "client_credentials":
        return await grants.client_credentials(ctx, client_id, secret, form.get("scope"))
    if grant_type not in GRANT_TYPES:
        raise OAuthError("unsupported_grant_type", f"supported: {' '.join(GRANT_TYPES)}")
    if not client_id:
        raise OAuthError.invalid_request("client_id is required")
    if secret is not None or client_id not in ctx.settings.public_clients:
        raise OAuthError.invalid_client()
    if grant_type == DEVICE_CODE:
        return await grants.device_code(ctx, client_id, form.get("device_code"))
    return await grants.refresh_token(ctx, client_id, form.get("refresh_token"), form.get("scope"))


@router.post(
    "/token", response_model=TokenResponse, responses=OAUTH_ERRORS, openapi_extra=TOKEN_FORM
)
async def token(
    request: Request, ctx: Context, guard: BruteForceGuard, settings: Settings
) -> Response:
    """Issue an access token (``client_credentials``, ``device_code`` or
    ``refresh_token``). A client id or address with too many failed attempts lately is
    refused with 429 and ``Retry-After``, whatever it sends."""
    try:
        form = await read_form(request)
        client_id, secret = client_authentication(request.headers, form)
    except OAuthError as exc:
        return error_response(exc)
    # a public client has no secret to guess: its id is not a brute-force target
    name = None if client_id in settings.public_clients else client_id
    await guard.admit(request, name)
    try:
        answer = await _grant(ctx, form, client_id, secret)
    except OAuthError as exc:
        if exc.error in FAILURES:
            await guard.failed(request, name)
        return error_response(exc)
    issued = answer.token
    body = TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        scope=issued.scope,
        refresh_token=answer.refresh_token,
    )
    return token_response(body)
