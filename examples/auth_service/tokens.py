"""Access tokens: JWTs signed with EdDSA (Ed25519) by PyJWT, and their verification.

A token's header is ``{"alg": "EdDSA", "kid": ..., "typ": "at+jwt"}`` (RFC 9068); its
claims are ``iss``, ``aud``, ``sub``, ``scope`` (space-separated), ``iat``, ``exp``,
``jti``, ``client_id`` and ``kind`` (``"user"`` or ``"client"``).

Verification accepts EdDSA only and looks the key up by ``kid`` among the published
keys, so ``alg: none``, an HS256 token "signed" with a public key, or a token of a
dropped key fail before any signature math. Expiry is checked against the service's own
clock (injectable, so tests move time instead of sleeping) rather than PyJWT's wall clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import jwt
from examples.auth_service.keys import ALGORITHM, SigningKey
from examples.auth_service.scopes import format_scope, ordered

__all__ = ["CLAIMS", "Grant", "InvalidTokenError", "IssuedToken", "Principal", "issue", "verify"]

CLAIMS = ("iss", "aud", "sub", "scope", "iat", "exp", "jti", "client_id", "kind")
"""The claims every access token carries."""

Kind = Literal["user", "client"]


@dataclass(frozen=True, slots=True)
class Grant:
    """Who a token is for: ``subject`` is a username (``kind="user"``) or a robot client's
    id (``kind="client"``); ``client_id`` the client that asked for it."""

    subject: str
    kind: Kind
    client_id: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A signed access token and what the token answer says about it."""

    access_token: str
    expires_in: int
    scope: str
    kid: str


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified claims of a bearer token."""

    subject: str
    kind: Kind
    client_id: str
    scopes: tuple[str, ...]
    expires_at: datetime
    token_id: str


class InvalidTokenError(Exception):
    """The bearer token cannot be trusted; the message says why (safe to show)."""


def issue(
    grant: Grant, key: SigningKey, *, issuer: str, audience: str, ttl: int, now: float
) -> IssuedToken:
    """Sign an access token for ``grant`` that expires ``ttl`` seconds after ``now``."""
    issued_at = int(now)
    scope = format_scope(grant.scopes)
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": grant.subject,
        "scope": scope,
        "iat": issued_at,
        "exp": issued_at + ttl,
        "jti": str(uuid.uuid4()),
        "client_id": grant.client_id,
        "kind": grant.kind,
    }
    headers = {"kid": key.kid, "typ": "at+jwt"}
    token = jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers=headers)
    return IssuedToken(token, ttl, scope, key.kid)


def verify(
    token: str, keys: Mapping[str, jwt.PyJWK], *, issuer: str, audience: str, now: float
) -> Principal:
    """The principal of a valid token. Raises :class:`InvalidTokenError` for a malformed
    token, another algorithm than EdDSA, a ``kid`` not among ``keys``, a bad signature, a
    wrong issuer or audience, a missing claim, or an expired token."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidTokenError("the token is malformed") from None
    if header.get("alg") != ALGORITHM:
        raise InvalidTokenError(f"tokens are signed with {ALGORITHM} only")
    key = keys.get(str(header.get("kid")))
    if key is None:
        raise InvalidTokenError("the token's signing key is unknown or no longer published")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            # expiry is checked below against the service's clock
            options={"require": list(CLAIMS), "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(f"the token is invalid: {exc}") from None
    return _principal(claims, now)


def _principal(claims: dict[str, Any], now: float) -> Principal:
    exp, sub, kind = claims["exp"], claims["sub"], claims["kind"]
    scope, client_id, jti = claims["scope"], claims["client_id"], claims["jti"]
    if not isinstance(exp, int | float) or exp <= now:
        raise InvalidTokenError("the token has expired")
    if kind not in ("user", "client") or not all(
        isinstance(v, str) for v in (sub, scope, client_id, jti)
    ):
        raise InvalidTokenError("the token's claims have the wrong types")
    return Principal(
        subject=sub,
        kind=kind,
        client_id=client_id,
        scopes=ordered(scope.split()),
        expires_at=datetime.fromtimestamp(exp, UTC),
        token_id=jti,
    )
