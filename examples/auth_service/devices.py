"""The device authorization grant (RFC 8628), the person's side and the device's start.

A device (the CLI) asks for a device code and a user code; the person opens the device
page, types the user code with their username and password, and approves or denies. The
password is only ever typed into that page, never on a command line. The device polls the
token endpoint meanwhile (:func:`~examples.auth_service.grants.device_code`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from urllib.parse import quote

from examples.auth_service import store
from examples.auth_service.credentials import (
    Passwords,
    digest,
    format_user_code,
    new_secret,
    new_user_code,
    normalize_user_code,
)
from examples.auth_service.grants import TokenContext
from examples.auth_service.models import DeviceAuthorization
from examples.auth_service.oauth import OAuthError
from examples.auth_service.scopes import ScopeError, ordered, parse_scope

__all__ = ["Decision", "Outcome", "decide", "pending", "start"]

_ATTEMPTS = 5


async def start(
    ctx: TokenContext,
    client_id: str | None,
    scope: str | None,
    *,
    new_code: Callable[[], str] = new_user_code,
) -> DeviceAuthorization:
    """A new device login for public client ``client_id``. Raises ``OAuthError``:
    invalid_request without a client id, invalid_client for one that may not use the
    device flow, invalid_scope for a scope outside the catalogue. A user code that is
    already in use is drawn again."""
    if not client_id:
        raise OAuthError.invalid_request("client_id is required")
    if client_id not in ctx.settings.public_clients:
        raise OAuthError.invalid_client()
    try:
        scopes = parse_scope(scope)
    except ScopeError as exc:
        raise OAuthError("invalid_scope", str(exc)) from None
    s = ctx.settings
    expires_at = ctx.at + timedelta(seconds=s.device_code_ttl)
    async with ctx.db.acquire() as conn, conn.transaction():
        await store.purge_device_codes(conn, ctx.at)
        for _ in range(_ATTEMPTS):
            user_code, device_code = new_code(), new_secret()
            stored = await store.insert_device_code(
                conn,
                digest(device_code),
                user_code,
                client_id,
                scopes,
                s.device_poll_interval,
                ctx.at,
                expires_at,
            )
            if stored:
                break
        else:
            raise RuntimeError(f"no free user code after {_ATTEMPTS} draws")
    shown = format_user_code(user_code)
    page = f"{s.issuer}/device"
    return DeviceAuthorization(
        device_code=device_code,
        user_code=shown,
        verification_uri=page,
        verification_uri_complete=f"{page}?user_code={quote(shown)}",
        expires_in=s.device_code_ttl,
        interval=s.device_poll_interval,
    )


async def pending(ctx: TokenContext, typed: str) -> store.DeviceCode | None:
    """The pending device login whose user code a person typed, or None."""
    code = normalize_user_code(typed)
    return None if code is None else await store.pending_device(ctx.db, code, ctx.at)


class Outcome(Enum):
    """What the device page tells the person."""

    APPROVED = "approved"
    DENIED = "denied"
    BAD_CREDENTIALS = "bad_credentials"
    BAD_CODE = "bad_code"


@dataclass(frozen=True, slots=True)
class Decision:
    """A person's answer on the device page."""

    user_code: str
    username: str
    password: str
    approve: bool


async def decide(ctx: TokenContext, passwords: Passwords, decision: Decision) -> Outcome:
    """Check the person's credentials first (so the page says nothing about a code to
    someone without them), then approve or deny the login of the user code. Disabled
    accounts are refused like wrong passwords."""
    login = await store.login(ctx.db, decision.username)
    right = await passwords.verify(login.password_hash if login else None, decision.password)
    if login is None or not right or login.disabled:
        return Outcome.BAD_CREDENTIALS
    if passwords.needs_rehash(login.password_hash):
        new_hash = await passwords.hash(decision.password)
        await store.set_password_hash(ctx.db, login.username, new_hash)
    found = await pending(ctx, decision.user_code)
    if found is None:
        return Outcome.BAD_CODE
    asked = found.scopes if found.scopes is not None else login.scopes
    granted = ordered(set(asked) & set(login.scopes))
    status = "approved" if decision.approve else "denied"
    async with ctx.db.acquire() as conn:
        done = await store.decide_device(
            conn, found.user_code, ctx.at, status=status, username=login.username, granted=granted
        )
    if not done:
        return Outcome.BAD_CODE
    return Outcome.APPROVED if decision.approve else Outcome.DENIED


def describe_scopes(found: store.DeviceCode) -> str:
    """What a login asks for, in words for the page."""
    return " ".join(found.scopes) if found.scopes is not None else "everything your account may do"
