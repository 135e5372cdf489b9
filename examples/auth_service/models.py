"""The auth service's request and response bodies.

Request bodies forbid unknown fields (a typo is a clear 422); responses ignore fields an
older client does not know. No response model has a field for a password hash or a stored
secret digest: they cannot leak through an answer by mistake.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from examples.auth_service.scopes import ScopeName
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from tracseq_kit.schemas import ResponseModel

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
"""Usernames and client ids: lowercase letters, digits, ``.``, ``_`` and ``-``, 1-64."""

Name = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=64)]
Password = Annotated[str, Field(min_length=12, max_length=256)]
Scopes = Annotated[list[ScopeName], Field(max_length=20)]

Kind = Literal["user", "client"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- OAuth ---------------------------------------------------------------------------


class TokenResponse(ResponseModel):
    """A successful token answer (RFC 6749 §5.1); ``refresh_token`` only for people who
    logged in with the device flow."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    scope: str
    """The granted scopes, space-separated (may be fewer than asked for)."""
    refresh_token: str | None = None


class OAuthErrorBody(ResponseModel):
    """An OAuth error (RFC 6749 §5.2, RFC 8628 §3.5): ``error`` is a code a client acts
    on (``invalid_client``, ``authorization_pending``, ``slow_down`` …)."""

    error: str
    error_description: str | None = None


class DeviceAuthorization(ResponseModel):
    """The answer to a device authorization request (RFC 8628 §3.2)."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


class Jwk(ResponseModel):
    """One public signing key (RFC 8037: an Ed25519 ``OKP`` key)."""

    model_config = ConfigDict(extra="allow")

    kty: str
    crv: str
    x: str
    kid: str
    alg: str
    use: str


class JwkSet(ResponseModel):
    """The keys that verify this service's tokens (RFC 7517)."""

    keys: list[Jwk]


class OpenIdConfiguration(ResponseModel):
    """OpenID Connect / OAuth 2.0 authorization server metadata (RFC 8414)."""

    model_config = ConfigDict(extra="allow")

    issuer: str
    jwks_uri: str
    token_endpoint: str
    device_authorization_endpoint: str
    grant_types_supported: list[str]
    scopes_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    access_token_signing_alg_values_supported: list[str]
    """The ``alg`` of every token (this service issues access tokens, no ID tokens)."""
    claims_supported: list[str]


class Me(ResponseModel):
    """Who a bearer token speaks for."""

    subject: str
    kind: Kind
    client_id: str
    scopes: list[str]
    expires_at: datetime


# -- users ---------------------------------------------------------------------------


class User(ResponseModel):
    """A person who logs in through the device page."""

    username: str
    scopes: list[ScopeName]
    disabled: bool
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime
    created_by: str | None = None


class UserCreate(_Request):
    """Body of ``POST /api/auth/users``."""

    username: Name
    password: Password
    """At least 12 characters; stored only as an Argon2id hash."""
    scopes: Scopes = Field(default_factory=list)
    disabled: StrictBool = False


class UserUpdate(_Request):
    """Body of ``PATCH /api/auth/users/{username}``: only the given fields change.
    A new ``password`` (or ``disabled: true``) ends the user's device logins (their
    refresh tokens stop working)."""

    scopes: Scopes = Field(default=None)  # type: ignore[arg-type]
    disabled: StrictBool = Field(default=None)  # type: ignore[assignment]
    password: Password = Field(default=None)  # type: ignore[assignment]


class UserPage(ResponseModel):
    """Users by username; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[User]
    next_cursor: str | None = None


# -- robot clients -------------------------------------------------------------------


class Client(ResponseModel):
    """A robot client: a pipeline or service that gets tokens with its secret."""

    client_id: str
    description: str
    scopes: list[ScopeName]
    disabled: bool
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime
    created_by: str | None = None


class ClientCreate(_Request):
    """Body of ``POST /api/auth/clients``."""

    client_id: Name
    description: str = Field(default="", max_length=500)
    scopes: Scopes = Field(default_factory=list)
    disabled: StrictBool = False


class ClientUpdate(_Request):
    """Body of ``PATCH /api/auth/clients/{client_id}``: only the given fields change."""

    description: str = Field(default=None, max_length=500)  # type: ignore[assignment]
    scopes: Scopes = Field(default=None)  # type: ignore[arg-type]
    disabled: StrictBool = Field(default=None)  # type: ignore[assignment]


class ClientWithSecret(Client):
    """A client with its secret, answered once: at creation and at each rotation.

    The secret is never stored (only its digest), so a replayed answer (the same
    ``Idempotency-Key`` again) has ``client_secret: null``: rotate the secret if the first
    answer was lost."""

    client_secret: str | None


class ClientPage(ResponseModel):
    """Clients by id; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[Client]
    next_cursor: str | None = None


# -- signing keys --------------------------------------------------------------------


class SigningKeyInfo(ResponseModel):
    """A signing key as the JWKS publishes it, with its life cycle."""

    kid: str
    alg: str
    created_at: datetime
    active: bool
    """Whether it signs new tokens (exactly one key does)."""
    retired_at: datetime | None = None
    published_until: datetime | None = None
    """When it leaves the JWKS: once every token it signed has expired."""


class KeyRotation(ResponseModel):
    """The result of a rotation: the new signing key and the keys still published."""

    active: SigningKeyInfo
    published: list[SigningKeyInfo]
