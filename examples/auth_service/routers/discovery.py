"""``/.well-known``: the public keys (JWKS) and the server's metadata (discovery)."""

from __future__ import annotations

from datetime import UTC, datetime

from examples.auth_service.deps import Keys, Now, Postgres, Settings
from examples.auth_service.grants import GRANT_TYPES
from examples.auth_service.keys import ALGORITHM, public_jwks
from examples.auth_service.models import Jwk, JwkSet, OpenIdConfiguration
from examples.auth_service.scopes import SCOPES
from examples.auth_service.tokens import CLAIMS
from fastapi import APIRouter, Response

router = APIRouter(prefix="/.well-known", tags=["discovery"])

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


@router.get("/jwks.json", response_model=JwkSet)
async def jwks(
    db: Postgres, keys: Keys, settings: Settings, now: Now, response: Response
) -> JwkSet:
    """The public keys that verify this service's tokens: the one that signs and the
    retired ones whose tokens may still be alive. Verifiers cache it for ``max-age``
    seconds and fetch it again when a token names a ``kid`` they do not know."""
    rows = await keys.published(db, datetime.fromtimestamp(now, UTC))
    response.headers["Cache-Control"] = f"public, max-age={settings.jwks_max_age}"
    return JwkSet(keys=[Jwk.model_validate(jwk) for jwk in public_jwks(rows)])


@router.get("/openid-configuration", response_model=OpenIdConfiguration)
async def openid_configuration(settings: Settings, response: Response) -> OpenIdConfiguration:
    """Where the token endpoint, the device endpoint and the JWKS are, and what they
    support (RFC 8414 metadata, at the OpenID discovery path)."""
    issuer = settings.issuer
    response.headers["Cache-Control"] = "public, max-age=3600"
    return OpenIdConfiguration(
        issuer=issuer,
        jwks_uri=f"{issuer}/.well-known/jwks.json",
        token_endpoint=f"{issuer}/oauth/token",
        device_authorization_endpoint=f"{issuer}/oauth/device_authorization",
        grant_types_supported=list(GRANT_TYPES),
        scopes_supported=list(SCOPES),
        token_endpoint_auth_methods_supported=AUTH_METHODS,
        access_token_signing_alg_values_supported=[ALGORITHM],
        claims_supported=list(CLAIMS),
    )
