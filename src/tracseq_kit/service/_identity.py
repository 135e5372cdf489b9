"""Handlers ask for the verified caller: ``CurrentIdentity``, ``require_scopes``.

The identity comes from :class:`~tracseq_kit.identity.IdentityMiddleware`, which
``create_service`` installs from the ``identity_*`` settings. The dependencies are
OAuth2 security requirements in the OpenAPI document, so a client generator knows which
scopes each operation needs and how to get a token (``/oauth/token`` at the gateway).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.openapi.models import OAuth2 as OAuth2Model
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase

from tracseq_kit.identity import Identity

__all__ = [
    "TOKEN_URL",
    "CurrentIdentity",
    "OptionalIdentity",
    "identity_of",
    "require_scopes",
]

TOKEN_URL = "/oauth/token"
"""Where the OpenAPI document says tokens come from: the auth service, through the
gateway (a relative URL, resolved against the server the document is served from)."""

_CHALLENGE = 'Bearer realm="tracseq"'


def identity_of(request: Any) -> Identity | None:
    """The verified identity of a Starlette/FastAPI ``request``, or None."""
    state = getattr(request, "state", None)
    identity = getattr(state, "identity", None) if state is not None else None
    return identity if isinstance(identity, Identity) else None


class _GatewayIdentity(SecurityBase):
    """The caller the gateway authenticated, as an OAuth2 security scheme."""

    def __init__(self) -> None:
        self.scheme_name = "tracseq"
        # the contract lists the scopes the document's operations use (``_contract``)
        self.model = OAuth2Model(
            flows=OAuthFlows(
                clientCredentials=OAuthFlowClientCredentials(tokenUrl=TOKEN_URL, scopes={})
            ),
            description=(
                "A bearer token from the auth service (client credentials for robots, the "
                "device flow for people: `tracseq login`), sent to the gateway."
            ),
        )

    async def __call__(self, request: Request, security_scopes: SecurityScopes) -> Identity:
        identity = identity_of(request)
        if identity is None:
            reason = getattr(request.state, "identity_error", None)
            detail = "This operation needs an authenticated caller"
            detail += f": {reason}." if reason else "; the request carries no identity."
            challenge = _CHALLENGE + (', error="invalid_token"' if reason else "")
            raise HTTPException(401, detail, headers={"WWW-Authenticate": challenge})
        missing = identity.missing(security_scopes.scopes)
        if missing:
            needed = " ".join(security_scopes.scopes)
            raise HTTPException(
                403,
                f"{identity.subject!r} lacks the scope {' '.join(missing)} for this operation.",
                headers={
                    "WWW-Authenticate": (
                        f'{_CHALLENGE}, error="insufficient_scope", scope="{needed}"'
                    )
                },
            )
        return identity


_SCHEME = _GatewayIdentity()


async def _optional_identity(request: Request) -> Identity | None:
    return identity_of(request)


def require_scopes(*scopes: str) -> Any:
    """A dependency giving the verified :class:`~tracseq_kit.identity.Identity` that
    holds every one of ``scopes`` (``admin`` holds them all)::

        Writer = Annotated[Identity, require_scopes("templates:write")]

        @router.post("/api/templates")
        async def create_template(body: TemplateCreate, who: Writer) -> Template: ...

    Fails with 401 problem+json (and ``WWW-Authenticate``) when the request has no
    verified identity, 403 when a scope is missing. The operation's OpenAPI entry lists
    the scopes and the 401/403 answers. Raises ``ValueError`` for an empty or blank
    scope name.
    """
    for scope in scopes:
        if not scope or scope != scope.strip() or " " in scope:
            raise ValueError(f"not a scope name: {scope!r}")
    return Security(_SCHEME, scopes=list(scopes))


CurrentIdentity = Annotated[Identity, Security(_SCHEME)]
"""The verified caller (any scopes); 401 problem+json without one."""

OptionalIdentity = Annotated[Identity | None, Depends(_optional_identity)]
"""The verified caller, or None: for operations open to anyone that say who acted when
they know."""
