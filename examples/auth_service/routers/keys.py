"""``/api/auth/keys``: the signing keys and their rotation (``admin`` scope)."""

from __future__ import annotations

from datetime import UTC, datetime

from examples.auth_service.deps import Admin, Keys, Now, Postgres, Settings, require_admin
from examples.auth_service.keys import keep_for, key_info, rotate_signing_key
from examples.auth_service.models import KeyRotation, SigningKeyInfo
from fastapi import APIRouter

from tracseq_kit.service import Idempotent, problems

router = APIRouter(prefix="/api/auth/keys", tags=["keys"], dependencies=[require_admin])


@router.get("", response_model=list[SigningKeyInfo], responses=problems(401, 403))
async def list_keys(db: Postgres, keys: Keys, now: Now) -> list[SigningKeyInfo]:
    """The published keys, newest first: the one that signs and the retired ones still
    in the JWKS (no key material)."""
    return [key_info(row) for row in await keys.published(db, datetime.fromtimestamp(now, UTC))]


@router.post("/rotate", response_model=KeyRotation, responses=problems(401, 403))
async def rotate_keys(
    db: Postgres, keys: Keys, settings: Settings, write: Idempotent, caller: Admin, now: Now
) -> KeyRotation:
    """Make a new key sign new tokens at once. The old key stays in the JWKS until every
    token it signed has expired (``published_until``), then it is dropped, so tokens
    already out keep working and nothing needs a restart."""
    at = datetime.fromtimestamp(now, UTC)
    ttl = keep_for(settings.access_token_ttl, settings.key_publish_grace)
    async with db.acquire() as conn, conn.transaction():
        await write.begin(conn)
        await rotate_signing_key(conn, keys, at, keep_for=ttl, actor=caller.subject)
        published = [key_info(row) for row in await keys.published(conn, at)]
        answer = KeyRotation(active=next(k for k in published if k.active), published=published)
        await write.remember(conn, answer)
    return answer
