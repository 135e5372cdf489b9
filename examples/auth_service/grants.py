"""The token endpoint's three grants; each answers a :class:`TokenAnswer` or raises
:class:`~examples.auth_service.oauth.OAuthError`.

- ``client_credentials`` (robots): the client's secret; the scopes asked for must be a
  subset of the client's.
- ``urn:ietf:params:oauth:grant-type:device_code`` (people, RFC 8628): the device polls
  until the person approved on the device page; too early is ``slow_down`` (the interval
  grows by 5 s), before a decision ``authorization_pending``, after a denial
  ``access_denied``, after expiry ``expired_token``. An approved code gives tokens once.
- ``refresh_token`` (people): each use rotates the token; a rotated token used again means
  it leaked, so its whole family (the login) is revoked.

A grant decides inside one transaction and raises only after it committed, so what the
decision wrote (the poll time, a revoked family and its event) is kept.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from examples.auth_service import store
from examples.auth_service.credentials import (
    REFRESH_TOKEN_PREFIX,
    digest,
    matches,
    new_secret,
)
from examples.auth_service.events import TOPIC, refresh_reuse_event
from examples.auth_service.keys import KeyRing
from examples.auth_service.oauth import OAuthError
from examples.auth_service.scopes import ScopeError, ordered, parse_scope
from examples.auth_service.settings import AuthServiceSettings
from examples.auth_service.tokens import Grant, IssuedToken, issue

from tracseq_kit.events import Outbox

__all__ = [
    "DEVICE_CODE",
    "GRANT_TYPES",
    "TokenAnswer",
    "TokenContext",
    "client_credentials",
    "device_code",
    "refresh_token",
]

DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPES = ("client_credentials", DEVICE_CODE, "refresh_token")
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5

outbox = Outbox()


@dataclass(frozen=True, slots=True)
class TokenContext:
    """What a grant needs: the pool, the settings, the keys and the time."""

    db: Any
    settings: AuthServiceSettings
    keys: KeyRing
    now: float

    @property
    def at(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    async def sign(self, conn: Any, grant: Grant) -> IssuedToken:
        s = self.settings
        key = await self.keys.signer(conn)
        return issue(
            grant, key, issuer=s.issuer, audience=s.audience, ttl=s.access_token_ttl, now=self.now
        )


@dataclass(frozen=True, slots=True)
class TokenAnswer:
    """A signed access token, and a refresh token for people."""

    token: IssuedToken
    refresh_token: str | None = None


def narrowed(allowed: tuple[str, ...], scope: str | None) -> tuple[str, ...]:
    """The scopes asked for in ``scope`` (all of ``allowed`` when absent). Raises
    ``OAuthError`` (invalid_scope) for one outside the catalogue or beyond ``allowed``."""
    try:
        asked = parse_scope(scope)
    except ScopeError as exc:
        raise OAuthError("invalid_scope", str(exc)) from None
    if asked is None:
        return allowed
    beyond = [s for s in asked if s not in allowed]
    if beyond:
        raise OAuthError("invalid_scope", f"scope {beyond[0]!r} is not granted to this client")
    return asked


async def client_credentials(
    ctx: TokenContext, client_id: str | None, secret: str | None, scope: str | None
) -> TokenAnswer:
    """A robot's token. An unknown client, a wrong secret and a disabled client all raise
    the same ``invalid_client``."""
    if not client_id or secret is None:
        raise OAuthError.invalid_client()
    found = await store.client_secret(ctx.db, client_id)
    # the secret is compared even for an unknown client: both answers take as long
    right = matches(found.secret_digest if found else None, secret)
    if found is None or not right or found.disabled:
        raise OAuthError.invalid_client()
    scopes = narrowed(found.scopes, scope)
    token = await ctx.sign(ctx.db, Grant(client_id, "client", client_id, scopes))
    return TokenAnswer(token)


# -- device code ---------------------------------------------------------------------


async def device_code(ctx: TokenContext, client_id: str, code: str | None) -> TokenAnswer:
    """A person's tokens for an approved device login (see the module docstring)."""
    if not code:
        raise OAuthError.invalid_request("device_code is required")
    async with ctx.db.acquire() as conn:
        async with conn.transaction():
            outcome = await _poll(ctx, conn, client_id, digest(code))
        if isinstance(outcome, OAuthError):
            raise outcome
        return outcome


async def _poll(
    ctx: TokenContext, conn: Any, client_id: str, device_digest: str
) -> TokenAnswer | OAuthError:
    found = await store.device_by_digest(conn, device_digest)
    if found is None or found.client_id != client_id:
        return OAuthError.invalid_grant("unknown device code")
    if found.expires_at <= ctx.at:
        return OAuthError("expired_token", "the device code expired; start the login again")
    if found.status == "denied":
        return OAuthError("access_denied", "the login was denied on the device page")
    if found.status == "used":
        return OAuthError.invalid_grant("the device code was already used")
    if found.status == "pending":
        return await _pending(ctx, conn, found)
    return await _approved(ctx, conn, found)


async def _pending(ctx: TokenContext, conn: Any, found: store.DeviceCode) -> OAuthError:
    last = found.last_polled_at
    if last is not None and ctx.at - last < timedelta(seconds=found.interval):
        interval = found.interval + SLOW_DOWN_STEP
        await store.record_poll(conn, found.device_digest, ctx.at, interval)
        return OAuthError("slow_down", f"poll at most every {interval} s")
    await store.record_poll(conn, found.device_digest, ctx.at, found.interval)
    return OAuthError("authorization_pending", "waiting for the person to approve")


async def _approved(
    ctx: TokenContext, conn: Any, found: store.DeviceCode
) -> TokenAnswer | OAuthError:
    await store.use_device(conn, found.device_digest)
    login = await store.login(conn, found.username or "")
    if login is None or login.disabled:
        return OAuthError("access_denied", "the account cannot log in")
    scopes = ordered(set(found.granted_scopes) & set(login.scopes))
    family = str(uuid.uuid4())
    refresh = await _new_refresh_token(ctx, conn, family, login.username, found.client_id, scopes)
    token = await ctx.sign(conn, Grant(login.username, "user", found.client_id, scopes))
    return TokenAnswer(token, refresh)


async def _new_refresh_token(
    ctx: TokenContext,
    conn: Any,
    family: str,
    username: str,
    client_id: str,
    scopes: tuple[str, ...],
) -> str:
    secret = new_secret(REFRESH_TOKEN_PREFIX)
    expires_at = ctx.at + timedelta(seconds=ctx.settings.refresh_token_ttl)
    await store.insert_refresh_token(
        conn, digest(secret), family, username, client_id, scopes, ctx.at, expires_at
    )
    return secret


# -- refresh token -------------------------------------------------------------------


async def refresh_token(
    ctx: TokenContext, client_id: str, token: str | None, scope: str | None
) -> TokenAnswer:
    """New tokens for a refresh token (which is used up: the answer has its successor)."""
    if not token:
        raise OAuthError.invalid_request("refresh_token is required")
    async with ctx.db.acquire() as conn:
        async with conn.transaction():
            outcome = await _refresh(ctx, conn, client_id, digest(token), scope)
        if isinstance(outcome, OAuthError):
            raise outcome
        return outcome


async def _refresh(
    ctx: TokenContext, conn: Any, client_id: str, token_digest: str, scope: str | None
) -> TokenAnswer | OAuthError:
    found = await store.refresh_token(conn, token_digest)
    if found is None or found.client_id != client_id or found.expires_at <= ctx.at:
        return OAuthError.invalid_grant("unknown or expired refresh token")
    if found.revoked_at is not None:
        return OAuthError.invalid_grant("the refresh token was revoked; log in again")
    if found.rotated_at is not None:
        await store.revoke_family(conn, found.family, ctx.at)
        await outbox.add(conn, TOPIC, refresh_reuse_event(found.username, found.client_id))
        return OAuthError.invalid_grant(
            "the refresh token was already used; this login is revoked, log in again"
        )
    login = await store.login(conn, found.username)
    if login is None or login.disabled:
        await store.revoke_family(conn, found.family, ctx.at)
        return OAuthError.invalid_grant("the account cannot log in")
    family_scopes = ordered(set(found.scopes) & set(login.scopes))
    try:
        scopes = narrowed(family_scopes, scope)
    except OAuthError as exc:
        return exc
    await store.mark_rotated(conn, token_digest, ctx.at)
    refresh = await _new_refresh_token(
        ctx, conn, found.family, found.username, client_id, family_scopes
    )
    token = await ctx.sign(conn, Grant(found.username, "user", client_id, scopes))
    return TokenAnswer(token, refresh)
