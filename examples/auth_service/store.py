"""The auth service's SQL: users, robot clients, signing keys, device codes and refresh
tokens. Every function takes a connection or the pool; none decides rules. Times come
from the caller (the service's clock), never from ``now()``, so tests can move time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from examples.auth_service.models import Client, ClientPage, User, UserPage
from examples.auth_service.scopes import ordered

# -- users ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Login:
    """What a login checks: the password hash, the scopes, whether disabled."""

    username: str
    password_hash: str
    scopes: tuple[str, ...]
    disabled: bool


def _user(r: Any) -> User:
    return User(
        username=r["username"],
        scopes=list(ordered(r["scopes"])),
        disabled=r["disabled"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        password_changed_at=r["password_changed_at"],
        created_by=r["created_by"],
    )


async def insert_user(
    conn: Any,
    username: str,
    password_hash: str,
    scopes: list[str],
    disabled: bool,
    actor: str | None,
    now: datetime,
) -> User | None:
    """A new user, or None when the username is taken."""
    r = await conn.fetchrow(
        """INSERT INTO auth_users (username, password_hash, scopes, disabled, created_by,
               created_at, updated_at, password_changed_at)
           VALUES ($1, $2, $3, $4, $5, $6, $6, $6)
           ON CONFLICT (username) DO NOTHING RETURNING *""",
        username,
        password_hash,
        list(ordered(scopes)),
        disabled,
        actor,
        now,
    )
    return None if r is None else _user(r)


async def get_user(db: Any, username: str, *, lock: bool = False) -> User | None:
    """The user, or None; ``lock`` holds its row until the transaction ends."""
    sql = "SELECT * FROM auth_users WHERE username = $1" + (" FOR UPDATE" if lock else "")
    r = await db.fetchrow(sql, username)
    return None if r is None else _user(r)


async def login(db: Any, username: str) -> Login | None:
    """What a login of ``username`` checks, or None for an unknown user."""
    r = await db.fetchrow(
        "SELECT username, password_hash, scopes, disabled FROM auth_users WHERE username = $1",
        username,
    )
    if r is None:
        return None
    return Login(r["username"], r["password_hash"], ordered(r["scopes"]), r["disabled"])


async def users_page(db: Any, *, limit: int, cursor: str | None) -> UserPage:
    """Users by username after ``cursor``."""
    rows = await db.fetch(
        """SELECT * FROM auth_users WHERE $1::text IS NULL OR username > $1
           ORDER BY username LIMIT $2""",
        cursor,
        limit + 1,
    )
    items = [_user(r) for r in rows[:limit]]
    more = len(rows) > limit
    return UserPage(items=items, next_cursor=items[-1].username if more else None)


async def update_user(conn: Any, username: str, changes: dict[str, Any], now: datetime) -> User:
    """Set ``changes`` (``scopes``, ``disabled``, ``password_hash``) on the user."""
    r = await conn.fetchrow(
        """UPDATE auth_users SET
               scopes = coalesce($2, scopes),
               disabled = coalesce($3, disabled),
               password_hash = coalesce($4, password_hash),
               password_changed_at = CASE WHEN $4::text IS NULL THEN password_changed_at
                                          ELSE $5 END,
               updated_at = $5
           WHERE username = $1 RETURNING *""",
        username,
        list(ordered(changes["scopes"])) if "scopes" in changes else None,
        changes.get("disabled"),
        changes.get("password_hash"),
        now,
    )
    return _user(r)


async def set_password_hash(conn: Any, username: str, password_hash: str) -> None:
    """Replace a hash by one of the same password with today's parameters."""
    await conn.execute(
        "UPDATE auth_users SET password_hash = $2 WHERE username = $1", username, password_hash
    )


# -- robot clients -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientSecret:
    """What client authentication checks."""

    client_id: str
    secret_digest: str
    scopes: tuple[str, ...]
    disabled: bool


def _client(r: Any) -> Client:
    return Client(
        client_id=r["client_id"],
        description=r["description"],
        scopes=list(ordered(r["scopes"])),
        disabled=r["disabled"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        secret_rotated_at=r["secret_rotated_at"],
        created_by=r["created_by"],
    )


async def insert_client(
    conn: Any,
    client_id: str,
    description: str,
    secret_digest: str,
    scopes: list[str],
    disabled: bool,
    actor: str | None,
    now: datetime,
) -> Client | None:
    """A new client, or None when the id is taken."""
    r = await conn.fetchrow(
        """INSERT INTO auth_clients (client_id, description, secret_digest, scopes, disabled,
               created_by, created_at, updated_at, secret_rotated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7)
           ON CONFLICT (client_id) DO NOTHING RETURNING *""",
        client_id,
        description,
        secret_digest,
        list(ordered(scopes)),
        disabled,
        actor,
        now,
    )
    return None if r is None else _client(r)


async def get_client(db: Any, client_id: str, *, lock: bool = False) -> Client | None:
    """The client, or None; ``lock`` holds its row until the transaction ends."""
    sql = "SELECT * FROM auth_clients WHERE client_id = $1" + (" FOR UPDATE" if lock else "")
    r = await db.fetchrow(sql, client_id)
    return None if r is None else _client(r)


async def client_secret(db: Any, client_id: str) -> ClientSecret | None:
    """What authenticating ``client_id`` checks, or None for an unknown client."""
    r = await db.fetchrow(
        "SELECT client_id, secret_digest, scopes, disabled FROM auth_clients WHERE client_id = $1",
        client_id,
    )
    if r is None:
        return None
    return ClientSecret(r["client_id"], r["secret_digest"], ordered(r["scopes"]), r["disabled"])


async def clients_page(db: Any, *, limit: int, cursor: str | None) -> ClientPage:
    """Clients by id after ``cursor``."""
    rows = await db.fetch(
        """SELECT * FROM auth_clients WHERE $1::text IS NULL OR client_id > $1
           ORDER BY client_id LIMIT $2""",
        cursor,
        limit + 1,
    )
    items = [_client(r) for r in rows[:limit]]
    more = len(rows) > limit
    return ClientPage(items=items, next_cursor=items[-1].client_id if more else None)


async def update_client(
    conn: Any, client_id: str, changes: dict[str, Any], now: datetime
) -> Client:
    """Set ``changes`` (``description``, ``scopes``, ``disabled``, ``secret_digest``)."""
    r = await conn.fetchrow(
        """UPDATE auth_clients SET
               description = coalesce($2, description),
               scopes = coalesce($3, scopes),
               disabled = coalesce($4, disabled),
               secret_digest = coalesce($5, secret_digest),
               secret_rotated_at = CASE WHEN $5::text IS NULL THEN secret_rotated_at
                                        ELSE $6 END,
               updated_at = $6
           WHERE client_id = $1 RETURNING *""",
        client_id,
        changes.get("description"),
        list(ordered(changes["scopes"])) if "scopes" in changes else None,
        changes.get("disabled"),
        changes.get("secret_digest"),
        now,
    )
    return _client(r)


# -- signing keys --------------------------------------------------------------------

_KEY_LOCK = 80_890_001  # serializes key creation and rotation across instances


async def lock_keys(conn: Any) -> None:
    """Hold the key lock until ``conn``'s transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", _KEY_LOCK)


async def active_key(db: Any) -> Any:
    """The row of the key that signs, or None."""
    return await db.fetchrow("SELECT * FROM auth_signing_keys WHERE retired_at IS NULL")


async def insert_key(
    conn: Any, kid: str, algorithm: str, jwk: dict[str, Any], sealed: bytes, now: datetime
) -> Any:
    """A new signing key (it signs from now on: retire the previous one first)."""
    return await conn.fetchrow(
        """INSERT INTO auth_signing_keys (kid, algorithm, public_jwk, private_key, created_at)
           VALUES ($1, $2, $3::jsonb, $4, $5) RETURNING *""",
        kid,
        algorithm,
        json.dumps(jwk),
        sealed,
        now,
    )


async def retire_active(conn: Any, now: datetime, published_until: datetime) -> str | None:
    """Stop the active key signing; it stays published until ``published_until``."""
    kid: str | None = await conn.fetchval(
        """UPDATE auth_signing_keys SET retired_at = $1, published_until = $2
           WHERE retired_at IS NULL RETURNING kid""",
        now,
        published_until,
    )
    return kid


async def published_keys(db: Any, now: datetime) -> list[Any]:
    """The keys in the JWKS at ``now``, newest first."""
    return list(
        await db.fetch(
            """SELECT * FROM auth_signing_keys
               WHERE published_until IS NULL OR published_until > $1
               ORDER BY created_at DESC, kid""",
            now,
        )
    )


async def drop_keys(conn: Any, now: datetime) -> list[str]:
    """Delete the keys no token can need any more (private key included); their kids."""
    rows = await conn.fetch(
        "DELETE FROM auth_signing_keys WHERE published_until <= $1 RETURNING kid", now
    )
    return [r["kid"] for r in rows]


# -- device codes --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """A device login: ``status`` is pending, approved, denied or used."""

    device_digest: str
    user_code: str
    client_id: str
    scopes: tuple[str, ...] | None
    status: str
    username: str | None
    granted_scopes: tuple[str, ...]
    interval: int
    last_polled_at: datetime | None
    expires_at: datetime


def _device(r: Any) -> DeviceCode:
    return DeviceCode(
        device_digest=r["device_digest"],
        user_code=r["user_code"],
        client_id=r["client_id"],
        scopes=None if r["scopes"] is None else ordered(r["scopes"]),
        status=r["status"],
        username=r["username"],
        granted_scopes=ordered(r["granted_scopes"] or ()),
        interval=r["interval"],
        last_polled_at=r["last_polled_at"],
        expires_at=r["expires_at"],
    )


async def insert_device_code(
    conn: Any,
    device_digest: str,
    user_code: str,
    client_id: str,
    scopes: tuple[str, ...] | None,
    interval: int,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Store a new device login; False when ``user_code`` is already in use."""
    status: str = await conn.execute(
        """INSERT INTO auth_device_codes (device_digest, user_code, client_id, scopes,
               interval, created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING""",
        device_digest,
        user_code,
        client_id,
        None if scopes is None else list(scopes),
        interval,
        now,
        expires_at,
    )
    return status.endswith("1")


async def purge_device_codes(conn: Any, now: datetime) -> None:
    """Forget device logins that expired (their user codes become free again)."""
    await conn.execute("DELETE FROM auth_device_codes WHERE expires_at <= $1", now)


async def device_by_digest(conn: Any, device_digest: str) -> DeviceCode | None:
    """The device login of a device code (row locked until the transaction ends)."""
    r = await conn.fetchrow(
        "SELECT * FROM auth_device_codes WHERE device_digest = $1 FOR UPDATE", device_digest
    )
    return None if r is None else _device(r)


async def pending_device(db: Any, user_code: str, now: datetime) -> DeviceCode | None:
    """The pending, unexpired device login of ``user_code``, or None."""
    r = await db.fetchrow(
        """SELECT * FROM auth_device_codes
           WHERE user_code = $1 AND status = 'pending' AND expires_at > $2""",
        user_code,
        now,
    )
    return None if r is None else _device(r)


async def record_poll(conn: Any, device_digest: str, now: datetime, interval: int) -> None:
    """Remember when the device last polled, and the interval it must keep."""
    await conn.execute(
        "UPDATE auth_device_codes SET last_polled_at = $2, interval = $3 WHERE device_digest = $1",
        device_digest,
        now,
        interval,
    )


async def decide_device(
    conn: Any,
    user_code: str,
    now: datetime,
    *,
    status: str,
    username: str,
    granted: tuple[str, ...],
) -> bool:
    """Approve or deny a pending device login; False when it is no longer pending."""
    result: str = await conn.execute(
        """UPDATE auth_device_codes SET status = $3, username = $4, granted_scopes = $5
           WHERE user_code = $1 AND status = 'pending' AND expires_at > $2""",
        user_code,
        now,
        status,
        username,
        list(granted),
    )
    return result.endswith("1")


async def use_device(conn: Any, device_digest: str) -> None:
    """Mark an approved device login as used: its device code gives tokens once."""
    await conn.execute(
        "UPDATE auth_device_codes SET status = 'used' WHERE device_digest = $1", device_digest
    )


# -- refresh tokens ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """One refresh token of a family (one device login and its rotations)."""

    token_digest: str
    family: str
    username: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None


async def insert_refresh_token(
    conn: Any,
    token_digest: str,
    family: str,
    username: str,
    client_id: str,
    scopes: tuple[str, ...],
    now: datetime,
    expires_at: datetime,
) -> None:
    """Store a refresh token (its digest)."""
    await conn.execute(
        """INSERT INTO auth_refresh_tokens (token_digest, family, username, client_id, scopes,
               created_at, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        token_digest,
        family,
        username,
        client_id,
        list(scopes),
        now,
        expires_at,
    )


async def refresh_token(conn: Any, token_digest: str) -> RefreshToken | None:
    """The refresh token with this digest (row locked until the transaction ends)."""
    r = await conn.fetchrow(
        "SELECT * FROM auth_refresh_tokens WHERE token_digest = $1 FOR UPDATE", token_digest
    )
    if r is None:
        return None
    return RefreshToken(
        token_digest=r["token_digest"],
        family=r["family"],
        username=r["username"],
        client_id=r["client_id"],
        scopes=ordered(r["scopes"]),
        expires_at=r["expires_at"],
        rotated_at=r["rotated_at"],
        revoked_at=r["revoked_at"],
    )


async def mark_rotated(conn: Any, token_digest: str, now: datetime) -> None:
    """The token was exchanged for a new one: using it again is a reuse."""
    await conn.execute(
        "UPDATE auth_refresh_tokens SET rotated_at = $2 WHERE token_digest = $1",
        token_digest,
        now,
    )


async def revoke_family(conn: Any, family: str, now: datetime) -> None:
    """Revoke every token of a family."""
    await conn.execute(
        """UPDATE auth_refresh_tokens SET revoked_at = $2
           WHERE family = $1 AND revoked_at IS NULL""",
        family,
        now,
    )


async def revoke_user_tokens(conn: Any, username: str, now: datetime) -> None:
    """Revoke every refresh token of ``username`` (password changed, user disabled)."""
    await conn.execute(
        """UPDATE auth_refresh_tokens SET revoked_at = $2
           WHERE username = $1 AND revoked_at IS NULL""",
        username,
        now,
    )


async def purge_refresh_tokens(conn: Any, now: datetime) -> None:
    """Forget refresh tokens that expired."""
    await conn.execute("DELETE FROM auth_refresh_tokens WHERE expires_at <= $1", now)
