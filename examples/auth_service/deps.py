"""What the routers ask for: the pool, the settings, the clock, the keys, the password
hasher, the brute-force guard, and the caller of a bearer token.

``Caller`` is the verified principal of ``Authorization: Bearer <token>`` (a token this
service signed with a key still in its JWKS): without a token, or with one that fails,
the answer is 401 problem+json with ``WWW-Authenticate: Bearer`` (RFC 6750). ``Admin``
additionally needs the ``admin`` scope: 403 with ``error="insufficient_scope"`` otherwise.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from examples.auth_service.credentials import Passwords
from examples.auth_service.grants import TokenContext
from examples.auth_service.guard import Guard
from examples.auth_service.keys import KeyRing
from examples.auth_service.settings import AuthServiceSettings
from examples.auth_service.tokens import InvalidTokenError, Principal, verify
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tracseq_kit.service import IdempotentWrite, idempotent_write, resource

Postgres = Annotated[asyncpg.Pool, resource("postgres")]
"""The service's connection pool (opened by ``create_service``)."""


def _settings(request: Request) -> AuthServiceSettings:
    settings: AuthServiceSettings = request.app.state.settings
    return settings


Settings = Annotated[AuthServiceSettings, Depends(_settings)]


def _clock(request: Request) -> Callable[[], float]:
    clock: Callable[[], float] = request.app.state.clock
    return clock


def _now(request: Request) -> float:
    return _clock(request)()


Now = Annotated[float, Depends(_now)]
"""The service's time (seconds since the epoch; injectable through ``create_app``)."""


def _keys(request: Request) -> KeyRing:
    keys: KeyRing = request.app.state.keys
    return keys


Keys = Annotated[KeyRing, Depends(_keys)]


def _passwords(request: Request) -> Passwords:
    passwords: Passwords = request.app.state.passwords
    return passwords


PasswordHasher = Annotated[Passwords, Depends(_passwords)]


def _guard(request: Request) -> Guard:
    guard: Guard = request.app.state.guard
    return guard


BruteForceGuard = Annotated[Guard, Depends(_guard)]


def _context(db: Postgres, settings: Settings, keys: Keys, now: Now) -> TokenContext:
    return TokenContext(db, settings, keys, now)


Context = Annotated[TokenContext, Depends(_context)]
"""Pool, settings, keys and the time of this request, for the grant functions."""

bearer = HTTPBearer(
    auto_error=False,
    description="An access token of this service (client credentials or device login).",
)


def _unauthorized(detail: str, *, error: str | None = None) -> HTTPException:
    challenge = 'Bearer realm="tracseq"' + (f', error="{error}"' if error else "")
    return HTTPException(401, detail, headers={"WWW-Authenticate": challenge})


async def _caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ctx: Context,
) -> Principal:
    if credentials is None:
        raise _unauthorized("send 'Authorization: Bearer <access token>'")
    keys = await ctx.keys.verification_keys(ctx.db, datetime.fromtimestamp(ctx.now, UTC))
    s = ctx.settings
    try:
        principal = verify(
            credentials.credentials, keys, issuer=s.issuer, audience=s.audience, now=ctx.now
        )
    except InvalidTokenError as exc:
        raise _unauthorized(str(exc), error="invalid_token") from None
    request.state.principal = principal
    return principal


Caller = Annotated[Principal, Depends(_caller)]
"""The verified principal of the request's bearer token (401 without a valid one)."""


def _admin(caller: Caller) -> Principal:
    if "admin" not in caller.scopes:
        raise HTTPException(
            403,
            "this needs the 'admin' scope",
            headers={
                "WWW-Authenticate": 'Bearer realm="tracseq", error="insufficient_scope", '
                'scope="admin"'
            },
        )
    return caller


Admin = Annotated[Principal, Depends(_admin)]
"""A caller whose token has the ``admin`` scope (401 without a token, 403 without it)."""

require_admin = Depends(_admin)
"""For a router's ``dependencies=``: every route needs an admin, checked before anything
else (so ``Idempotency-Key`` scopes know the caller)."""


def idempotency_scope(request: Request) -> str:
    """The ``Idempotency-Key`` space of a request: the verified caller's subject."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return f"{principal.kind}:{principal.subject}" if principal else ""


async def _keyed_write(request: Request) -> IdempotentWrite:
    write = await idempotent_write(request)
    if write.key is None:
        return write
    pepper: bytes = request.app.state.idempotency_pepper
    keyed = hmac.new(pepper, write.fingerprint.encode(), "sha256").hexdigest()
    return IdempotentWrite(write.key, write.scope, keyed, request, request.app.state.idempotency)


KeyedIdempotent = Annotated[IdempotentWrite, Depends(_keyed_write)]
"""The kit's ``Idempotent`` for writes whose body holds a password: the kit remembers a
SHA-256 of each request body to tell a retry from another request, and a fast, unsalted
digest of a body holding a password could be guessed offline; keyed with a secret of the
service (HMAC), it cannot be without that secret."""
