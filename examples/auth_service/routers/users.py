"""``/api/auth/users``: people who log in through the device page (``admin`` scope).

Every change is one transaction: the row, its event in the outbox, and the answer
remembered for its ``Idempotency-Key``. A new password or ``disabled: true`` also revokes
the user's refresh tokens, so their device logins end with their current access token.
These bodies hold passwords, so the ``Idempotency-Key`` fingerprint of a request is keyed
with a secret of the service (:data:`~examples.auth_service.deps.KeyedIdempotent`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from examples.auth_service import store
from examples.auth_service.deps import (
    Admin,
    KeyedIdempotent,
    Now,
    PasswordHasher,
    Postgres,
    require_admin,
)
from examples.auth_service.events import TOPIC, user_event
from examples.auth_service.models import User, UserCreate, UserPage, UserUpdate
from fastapi import APIRouter, HTTPException, Path, Query, Response

from tracseq_kit.events import Outbox
from tracseq_kit.service import problems

router = APIRouter(prefix="/api/auth/users", tags=["users"], dependencies=[require_admin])
outbox = Outbox()

Username = Annotated[str, Path(max_length=64)]
ADMIN_PROBLEMS = (401, 403)


@router.post("", status_code=201, response_model=User, responses=problems(*ADMIN_PROBLEMS, 409))
async def create_user(
    body: UserCreate,
    db: Postgres,
    write: KeyedIdempotent,
    response: Response,
    caller: Admin,
    passwords: PasswordHasher,
    now: Now,
) -> User:
    """Create a user (``Location`` names it); 409 when the username is taken."""
    password_hash = await passwords.hash(body.password)
    scopes = [s.value for s in body.scopes]
    at = datetime.fromtimestamp(now, UTC)
    async with db.acquire() as conn, conn.transaction():
        await write.begin(conn)
        user = await store.insert_user(
            conn, body.username, password_hash, scopes, body.disabled, caller.subject, at
        )
        if user is None:
            raise HTTPException(409, f"user {body.username!r} already exists")
        await outbox.add(conn, TOPIC, user_event("created", user.username, scopes, caller.subject))
        response.headers["Location"] = f"{router.prefix}/{user.username}"
        await write.remember(conn, user, headers=dict(response.headers))
    return user


@router.get("", response_model=UserPage, responses=problems(*ADMIN_PROBLEMS))
async def list_users(
    db: Postgres,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> UserPage:
    """Users by username; pass ``next_cursor`` back as ``cursor`` for the next page."""
    return await store.users_page(db, limit=limit, cursor=cursor)


@router.get("/{username}", response_model=User, responses=problems(*ADMIN_PROBLEMS, 404))
async def get_user(username: Username, db: Postgres) -> User:
    """One user (never their password hash)."""
    user = await store.get_user(db, username)
    if user is None:
        raise HTTPException(404, f"user {username!r} not found")
    return user


def _event_kinds(before: User, after: User, changes: dict[str, Any]) -> list[str]:
    kinds = []
    if set(before.scopes) != set(after.scopes):
        kinds.append("scopes_changed")
    if before.disabled != after.disabled:
        kinds.append("disabled" if after.disabled else "enabled")
    if "password_hash" in changes:
        kinds.append("password_reset")
    return kinds


@router.patch("/{username}", response_model=User, responses=problems(*ADMIN_PROBLEMS, 404))
async def update_user(
    username: Username,
    body: UserUpdate,
    db: Postgres,
    write: KeyedIdempotent,
    caller: Admin,
    passwords: PasswordHasher,
    now: Now,
) -> User:
    """Change ``scopes``, ``disabled`` or reset the ``password``; fields left out stay."""
    changes = body.model_dump(exclude_unset=True, mode="json")
    if "password" in changes:
        changes["password_hash"] = await passwords.hash(changes.pop("password"))
    at = datetime.fromtimestamp(now, UTC)
    async with db.acquire() as conn, conn.transaction():
        await write.begin(conn)
        before = await store.get_user(conn, username, lock=True)
        if before is None:
            raise HTTPException(404, f"user {username!r} not found")
        user = await store.update_user(conn, username, changes, at) if changes else before
        kinds = _event_kinds(before, user, changes)
        for kind in kinds:
            await outbox.add(conn, TOPIC, user_event(kind, username, user.scopes, caller.subject))
        if {"disabled", "password_reset"} & set(kinds):
            await store.revoke_user_tokens(conn, username, at)
        await write.remember(conn, user)
    return user
