"""``/api/auth/clients``: robot clients (pipelines, services) and their secrets (``admin``).

A client's secret is made here (256 random bits), answered once, at creation or
rotation, and stored only as a digest. A replay of either answer (the same
``Idempotency-Key``) has ``client_secret: null``: the secret is not kept to be sent again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from examples.auth_service import store
from examples.auth_service.credentials import CLIENT_SECRET_PREFIX, digest, new_secret
from examples.auth_service.deps import Admin, Now, Postgres, Settings, require_admin
from examples.auth_service.events import TOPIC, client_event
from examples.auth_service.models import (
    Client,
    ClientCreate,
    ClientPage,
    ClientUpdate,
    ClientWithSecret,
)
from fastapi import APIRouter, HTTPException, Path, Query, Response

from tracseq_kit.events import Outbox
from tracseq_kit.service import Idempotent, IdempotentWrite, problems

router = APIRouter(prefix="/api/auth/clients", tags=["clients"], dependencies=[require_admin])
outbox = Outbox()

ClientId = Annotated[str, Path(max_length=64)]
ADMIN_PROBLEMS = (401, 403)


async def _answer(
    conn: Any,
    client: Client,
    secret: str,
    write: IdempotentWrite,
    headers: dict[str, str] | None = None,
) -> ClientWithSecret:
    """The client with its secret; remembered for a replay without it."""
    shown = ClientWithSecret(**client.model_dump(), client_secret=secret)
    await write.remember(conn, shown.model_copy(update={"client_secret": None}), headers=headers)
    return shown


@router.post(
    "",
    status_code=201,
    response_model=ClientWithSecret,
    responses=problems(*ADMIN_PROBLEMS, 409),
)
async def create_client(
    body: ClientCreate,
    db: Postgres,
    write: Idempotent,
    response: Response,
    caller: Admin,
    settings: Settings,
    now: Now,
) -> ClientWithSecret:
    """Create a robot client with a new secret, answered this once (``Location`` names
    the client); 409 when the id is taken or is a public client's."""
    if body.client_id in settings.public_clients:
        raise HTTPException(409, f"{body.client_id!r} is a public client's id; choose another")
    secret = new_secret(CLIENT_SECRET_PREFIX)
    scopes = [s.value for s in body.scopes]
    at = datetime.fromtimestamp(now, UTC)
    async with db.acquire() as conn, conn.transaction():
        await write.begin(conn)
        client = await store.insert_client(
            conn, body.client_id, body.description, digest(secret), scopes, body.disabled,
            caller.subject, at,
        )  # fmt: skip
        if client is None:
            raise HTTPException(409, f"client {body.client_id!r} already exists")
        event = client_event("created", client.client_id, scopes, caller.subject)
        await outbox.add(conn, TOPIC, event)
        response.headers["Location"] = f"{router.prefix}/{client.client_id}"
        return await _answer(conn, client, secret, write, dict(response.headers))


@router.get("", response_model=ClientPage, responses=problems(*ADMIN_PROBLEMS))
async def list_clients(
    db: Postgres,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> ClientPage:
    """Clients by id; pass ``next_cursor`` back as ``cursor`` for the next page."""
    return await store.clients_page(db, limit=limit, cursor=cursor)


@router.get("/{client_id}", response_model=Client, responses=problems(*ADMIN_PROBLEMS, 404))
async def get_client(client_id: ClientId, db: Postgres) -> Client:
    """One client (never its secret or the secret's digest)."""
    client = await store.get_client(db, client_id)
    if client is None:
        raise HTTPException(404, f"client {client_id!r} not found")
    return client


async def _locked(conn: Any, client_id: str) -> Client:
    client = await store.get_client(conn, client_id, lock=True)
    if client is None:
        raise HTTPException(404, f"client {client_id!r} not found")
    return client


def _event_kinds(before: Client, after: Client) -> list[str]:
    kinds = []
    if set(before.scopes) != set(after.scopes):
        kinds.append("scopes_changed")
    if before.disabled != after.disabled:
        kinds.append("disabled" if after.disabled else "enabled")
    return kinds


@router.patch("/{client_id}", response_model=Client, responses=problems(*ADMIN_PROBLEMS, 404))
async def update_client(
    client_id: ClientId,
    body: ClientUpdate,
    db: Postgres,
    write: Idempotent,
    caller: Admin,
    now: Now,
) -> Client:
    """Change ``description``, ``scopes`` or ``disabled``; fields left out stay. A
    disabled client gets no new tokens (those it has run out within their lifetime)."""
    changes = body.model_dump(exclude_unset=True, mode="json")
    async with db.acquire() as conn, conn.transaction():
        await write.begin(conn)
        before = await _locked(conn, client_id)
        at = datetime.fromtimestamp(now, UTC)
        client = await store.update_client(conn, client_id, changes, at) if changes else before
        for kind in _event_kinds(before, client):
            event = client_event(kind, client_id, client.scopes, caller.subject)
            await outbox.add(conn, TOPIC, event)
        await write.remember(conn, client)
    return client


@router.post(
    "/{client_id}/secret",
    response_model=ClientWithSecret,
    responses=problems(*ADMIN_PROBLEMS, 404),
)
async def rotate_client_secret(
    client_id: ClientId, db: Postgres, write: Idempotent, caller: Admin, now: Now
) -> ClientWithSecret:
    """Replace the client's secret by a new one, answered this once; the old secret stops
    working at once (tokens already issued run out within their lifetime)."""
    secret = new_secret(CLIENT_SECRET_PREFIX)
    async with db.acquire() as conn, conn.transaction():
        await write.begin(conn)
        await _locked(conn, client_id)
        at = datetime.fromtimestamp(now, UTC)
        client = await store.update_client(conn, client_id, {"secret_digest": digest(secret)}, at)
        event = client_event("secret_rotated", client_id, client.scopes, caller.subject)
        await outbox.add(conn, TOPIC, event)
        return await _answer(conn, client, secret, write)
