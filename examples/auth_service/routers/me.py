"""``/api/auth/me``: who a bearer token speaks for."""

from __future__ import annotations

from examples.auth_service.deps import Caller
from examples.auth_service.models import Me
from fastapi import APIRouter

from tracseq_kit.service import problems

router = APIRouter(prefix="/api/auth", tags=["me"])


@router.get("/me", response_model=Me, responses=problems(401))
async def whoami(caller: Caller) -> Me:
    """The subject, kind (``user`` or ``client``), scopes and expiry of the token sent."""
    return Me(
        subject=caller.subject,
        kind=caller.kind,
        client_id=caller.client_id,
        scopes=list(caller.scopes),
        expires_at=caller.expires_at,
    )
