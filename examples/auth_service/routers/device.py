"""The device flow (RFC 8628): ``POST /oauth/device_authorization`` for the device, and
the device page ``GET``/``POST /device`` where a person approves or denies it.

The page answers HTML in every case, a 429 included; wrong credentials and an unknown
code are counted as failures (per username and per address) by the brute-force guard.
"""

from __future__ import annotations

from typing import Annotated, Any

from examples.auth_service import devices
from examples.auth_service.deps import BruteForceGuard, Context, PasswordHasher
from examples.auth_service.devices import Decision, Outcome
from examples.auth_service.guard import TooManyFailures
from examples.auth_service.models import DeviceAuthorization, OAuthErrorBody
from examples.auth_service.oauth import (
    NO_STORE,
    OAuthError,
    error_response,
    form_body,
    read_form,
)
from examples.auth_service.page import HEADERS, render
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

router = APIRouter(tags=["device"])

_TEXT = {"type": "string", "maxLength": 4096}
START_FORM = form_body(
    {"client_id": _TEXT, "scope": {**_TEXT, "description": "space-separated scopes"}},
    ["client_id"],
    "The public client's id (the CLI) and, optionally, the scopes it asks for.",
)
PAGE_FORM = form_body(
    {
        "user_code": {"type": "string", "maxLength": 32},
        "username": {"type": "string", "maxLength": 64},
        "password": {"type": "string", "maxLength": 256},
        "action": {"type": "string", "enum": ["approve", "deny"]},
    },
    ["user_code", "username", "password", "action"],
    "What the person typed on the device page, and the button they pressed.",
)
HTML: dict[str, Any] = {"text/html": {"schema": {"type": "string"}}}
PAGE_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"content": HTML, "description": "the page"},
    400: {"content": HTML, "description": "the page, saying what to fix"},
    429: {"content": HTML, "description": "the page, saying when to try again"},
}

_MESSAGES = {
    Outcome.APPROVED: ("Device approved. You can return to your terminal.", 200, True),
    Outcome.DENIED: ("Login denied. The device gets no access.", 200, True),
    Outcome.BAD_CREDENTIALS: ("The username or password is not correct.", 400, False),
    Outcome.BAD_CODE: (
        "That code is not valid or has expired. Start the login again in your terminal.",
        400,
        False,
    ),
}


@router.post(
    "/oauth/device_authorization",
    response_model=DeviceAuthorization,
    responses={
        400: {"model": OAuthErrorBody, "description": "an OAuth error (RFC 6749 §5.2)"},
        401: {"model": OAuthErrorBody, "description": "invalid_client"},
    },
    openapi_extra=START_FORM,
)
async def device_authorization(request: Request, ctx: Context) -> Response:
    """Start a device login: the device shows ``user_code`` and ``verification_uri`` to
    the person, then polls the token endpoint with ``device_code`` every ``interval`` s."""
    try:
        form = await read_form(request)
        started = await devices.start(ctx, form.get("client_id"), form.get("scope"))
    except OAuthError as exc:
        return error_response(exc)
    return JSONResponse(started.model_dump(), headers=NO_STORE)


def _html(text: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers={**HEADERS, **(headers or {})})


@router.get("/device", response_class=HTMLResponse, responses=PAGE_ANSWERS)
async def device_page(
    request: Request,
    ctx: Context,
    guard: BruteForceGuard,
    user_code: Annotated[str, Query(max_length=32)] = "",
) -> HTMLResponse:
    """The page where a person enters the code their terminal shows (prefilled from
    ``verification_uri_complete``), their username and password."""
    if not user_code:
        return _html(render())
    try:
        await guard.admit(request, None)
    except TooManyFailures as exc:
        return _too_many(exc, user_code)
    found = await devices.pending(ctx, user_code)
    if found is None:
        await guard.failed(request, None)
        message = _MESSAGES[Outcome.BAD_CODE][0]
        return _html(render(message=message, user_code=user_code), 400)
    asks = (found.client_id, devices.describe_scopes(found))
    return _html(render(user_code=user_code, asks=asks))


def _too_many(exc: TooManyFailures, user_code: str = "", username: str = "") -> HTMLResponse:
    message = f"Too many failed attempts. Try again in {exc.retry_after} seconds."
    page = render(message=message, user_code=user_code, username=username)
    return _html(page, 429, {"Retry-After": str(exc.retry_after)})


def _decision(form: dict[str, str]) -> Decision | None:
    action = form.get("action")
    fields = [form.get(name, "") for name in ("user_code", "username", "password")]
    if action not in ("approve", "deny") or not all(fields):
        return None
    user_code, username, password = fields
    return Decision(user_code, username, password, approve=action == "approve")


@router.post(
    "/device", response_class=HTMLResponse, responses=PAGE_ANSWERS, openapi_extra=PAGE_FORM
)
async def decide_device(
    request: Request, ctx: Context, guard: BruteForceGuard, passwords: PasswordHasher
) -> HTMLResponse:
    """Approve or deny a device login with the person's username and password. A wrong
    username or password gets one message, never which of the two was wrong."""
    try:
        decision = _decision(await read_form(request))
    except OAuthError:
        decision = None
    if decision is None:
        message = "Fill in the code, your username and password, then choose a button."
        return _html(render(message=message), 400)
    try:
        await guard.admit(request, decision.username)
    except TooManyFailures as exc:
        return _too_many(exc, decision.user_code, decision.username)
    outcome = await devices.decide(ctx, passwords, decision)
    message, status, ok = _MESSAGES[outcome]
    if not ok:
        name = decision.username if outcome is Outcome.BAD_CREDENTIALS else None
        await guard.failed(request, name)
        page = render(message=message, user_code=decision.user_code, username=decision.username)
        return _html(page, status)
    return _html(render(title="Done", message=message, ok=True, form=False), status)
