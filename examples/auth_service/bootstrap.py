"""Identities for a development stack: a person, an all-powerful robot and a read-only one.

    python -m examples.auth_service.bootstrap --dsn postgresql://... [--issuer URL]

prints them as JSON. ``tracseq dev`` calls :func:`ensure_dev_identities` once the auth
service's database exists. It applies the service's migrations first (idempotent), so it
may run before or after the service started.

Idempotent in what it leaves behind: running it again creates nothing new; the three
identities exist, are enabled and have their scopes. Their credentials are drawn anew at
every run (the old ones stop working, the user's device logins end), because only
digests are stored: a run can hand out working credentials, never recover earlier ones.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from examples.auth_service import store
from examples.auth_service.app import migrate_database
from examples.auth_service.credentials import CLIENT_SECRET_PREFIX, Passwords, digest, new_secret
from examples.auth_service.events import TOPIC, client_event, user_event
from examples.auth_service.scopes import SCOPES

from tracseq_kit.events import Outbox

__all__ = [
    "DEV_READER",
    "DEV_ROBOT",
    "DEV_USER",
    "READER_SCOPES",
    "DevClient",
    "DevIdentities",
    "DevUser",
    "ensure_dev_identities",
    "ensure_dev_identities_async",
]

DEV_USER = "dev"
DEV_ROBOT = "dev-robot"
DEV_READER = "dev-reader"
READER_SCOPES: tuple[str, ...] = ("templates:read", "events:read")
ACTOR = "bootstrap"

outbox = Outbox()


@dataclass(frozen=True, slots=True)
class DevUser:
    """The development person: logs in on the device page with this password."""

    username: str
    password: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DevClient:
    """A development robot: gets tokens with ``client_credentials``."""

    client_id: str
    client_secret: str
    scopes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DevIdentities:
    """What :func:`ensure_dev_identities` made, with where to use it."""

    issuer: str
    token_endpoint: str
    device_authorization_endpoint: str
    cli_client_id: str
    user: DevUser
    robot: DevClient
    reader: DevClient

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (what the command prints)."""
        return asdict(self)


async def _user(conn: Any, passwords: Passwords, now: datetime) -> DevUser:
    password = new_secret()
    password_hash = await passwords.hash(password)
    scopes = list(SCOPES)
    created = await store.insert_user(conn, DEV_USER, password_hash, scopes, False, ACTOR, now)
    if created is None:
        changes = {"scopes": scopes, "disabled": False, "password_hash": password_hash}
        await store.update_user(conn, DEV_USER, changes, now)
        await store.revoke_user_tokens(conn, DEV_USER, now)
    kind = "created" if created else "password_reset"
    await outbox.add(conn, TOPIC, user_event(kind, DEV_USER, scopes, ACTOR))
    return DevUser(DEV_USER, password, SCOPES)


async def _client(conn: Any, client_id: str, scopes: tuple[str, ...], now: datetime) -> DevClient:
    secret = new_secret(CLIENT_SECRET_PREFIX)
    description = "development robot made by the bootstrap"
    created = await store.insert_client(
        conn, client_id, description, digest(secret), list(scopes), False, ACTOR, now
    )
    if created is None:
        changes = {"scopes": list(scopes), "disabled": False, "secret_digest": digest(secret)}
        await store.update_client(conn, client_id, changes, now)
    kind = "created" if created else "secret_rotated"
    await outbox.add(conn, TOPIC, client_event(kind, client_id, scopes, ACTOR))
    return DevClient(client_id, secret, scopes)


async def ensure_dev_identities_async(
    dsn: str,
    *,
    issuer: str,
    cli_client_id: str = "tracseq-cli",
    passwords: Passwords | None = None,
) -> DevIdentities:
    """:func:`ensure_dev_identities` for code already inside an event loop."""
    passwords = passwords or Passwords()
    issuer = issuer.rstrip("/")
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate_database(conn)
        async with conn.transaction():
            user = await _user(conn, passwords, now)
            robot = await _client(conn, DEV_ROBOT, SCOPES, now)
            reader = await _client(conn, DEV_READER, READER_SCOPES, now)
    finally:
        await conn.close()
    return DevIdentities(
        issuer=issuer,
        token_endpoint=f"{issuer}/oauth/token",
        device_authorization_endpoint=f"{issuer}/oauth/device_authorization",
        cli_client_id=cli_client_id,
        user=user,
        robot=robot,
        reader=reader,
    )


def ensure_dev_identities(
    dsn: str,
    *,
    issuer: str,
    cli_client_id: str = "tracseq-cli",
    passwords: Passwords | None = None,
) -> DevIdentities:
    """Make sure the development identities exist in the auth service's database at
    ``dsn``, and return them with fresh credentials (see the module docstring):

    - user ``dev`` with every scope and a random password;
    - robot ``dev-robot`` with every scope and a random secret;
    - robot ``dev-reader`` with ``templates:read events:read`` and a random secret.

    ``issuer`` is the auth service's base URL (the endpoints in the answer are built from
    it); ``cli_client_id`` the public client the CLI logs in as. ``passwords`` hashes the
    password (default: the service's Argon2id parameters). Everything happens in one
    transaction, with the events in the outbox. Raises asyncpg's errors when the database
    cannot be reached; call :func:`ensure_dev_identities_async` from inside a running
    event loop.
    """
    return asyncio.run(
        ensure_dev_identities_async(
            dsn, issuer=issuer, cli_client_id=cli_client_id, passwords=passwords
        )
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m examples.auth_service.bootstrap``: print the identities as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.auth_service.bootstrap",
        description="Create or refresh the development identities; print them as JSON.",
    )
    parser.add_argument(
        "--dsn",
        default=os.environ.get("TRACSEQ_AUTH_POSTGRES_DSN"),
        help="the auth service's database (default: $TRACSEQ_AUTH_POSTGRES_DSN)",
    )
    parser.add_argument(
        "--issuer",
        default=os.environ.get("TRACSEQ_AUTH_ISSUER", "http://127.0.0.1:8089"),
        help="the auth service's base URL (default: $TRACSEQ_AUTH_ISSUER or :8089)",
    )
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error("give --dsn or set TRACSEQ_AUTH_POSTGRES_DSN")
    identities = ensure_dev_identities(args.dsn, issuer=args.issuer)
    json.dump(identities.as_dict(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
