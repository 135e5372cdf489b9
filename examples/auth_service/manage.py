"""Operator commands of the auth service (settings from the ``TRACSEQ_AUTH_*`` variables)::

    python -m examples.auth_service.manage new-encryption-key   # a value for the secret
    python -m examples.auth_service.manage rotate-key           # a new signing key, now
    python -m examples.auth_service.manage keys                 # the published keys

``rotate-key`` does what ``POST /api/auth/keys/rotate`` does (for a cron job, or when no
admin token is at hand): running instances sign with the new key from their next token.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

import asyncpg
from cryptography.fernet import Fernet
from examples.auth_service.app import migrate_database
from examples.auth_service.keys import KeyRing, keep_for, key_info, rotate_signing_key
from examples.auth_service.settings import AuthServiceSettings

__all__ = ["main", "rotate_key"]


async def rotate_key(settings: AuthServiceSettings, *, actor: str = "manage") -> dict[str, object]:
    """Rotate the signing key in ``settings``' database; the new kid and the retired one."""
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        await migrate_database(conn)
        ring = KeyRing(settings.fernet())
        now = datetime.now(UTC)
        ttl = keep_for(settings.access_token_ttl, settings.key_publish_grace)
        async with conn.transaction():
            rotation = await rotate_signing_key(conn, ring, now, keep_for=ttl, actor=actor)
    finally:
        await conn.close()
    until = rotation.published_until.isoformat() if rotation.published_until else None
    return {"kid": rotation.kid, "retired": rotation.retired, "published_until": until}


async def _keys(settings: AuthServiceSettings) -> list[dict[str, object]]:
    conn = await asyncpg.connect(settings.postgres_dsn.get_secret_value())
    try:
        rows = await KeyRing(settings.fernet()).published(conn, datetime.now(UTC))
    finally:
        await conn.close()
    return [key_info(row).model_dump(mode="json") for row in rows]


def main(argv: list[str] | None = None) -> int:
    """Run one command; print its result as JSON (the encryption key as a bare line)."""
    parser = argparse.ArgumentParser(prog="python -m examples.auth_service.manage")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("new-encryption-key", help="print a new Fernet key")
    commands.add_parser("rotate-key", help="make a new signing key sign from now on")
    commands.add_parser("keys", help="list the published signing keys")
    args = parser.parse_args(argv)
    if args.command == "new-encryption-key":
        print(Fernet.generate_key().decode())
        return 0
    settings = AuthServiceSettings()
    if args.command == "rotate-key":
        result: object = asyncio.run(rotate_key(settings))
    else:
        result = asyncio.run(_keys(settings))
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
