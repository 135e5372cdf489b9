"""Signing keys: Ed25519 key pairs in PostgreSQL, private halves encrypted.

**Where private keys live.** In the ``auth_signing_keys`` table, each private key
serialized as PKCS#8 and encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from
``cryptography``) under ``TRACSEQ_AUTH_KEY_ENCRYPTION_KEY``, the one secret the deployment
passes in. So every instance of the service signs with the same key, a rotation made by
one instance (or by the ``manage rotate-key`` command) reaches all of them without a
restart, and a copy of the database alone signs nothing. Several encryption keys may be
given (the first encrypts, all decrypt) to change that secret without downtime.

**Rotation.** Exactly one key signs. :meth:`KeyRing.rotate` (under an advisory lock, so
concurrent rotations queue) makes a new key the signer and retires the old one, which stays
in the JWKS until ``retired_at + access_token_ttl + grace``: the last token it signed has
expired by then. After that it leaves the JWKS and its row (private key included) is
deleted, so a token it signed no longer verifies anywhere. Verifiers refresh their JWKS
when they meet an unknown ``kid``, so a new key can sign at once.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.fernet import MultiFernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from examples.auth_service import store
from examples.auth_service.events import TOPIC, key_event
from examples.auth_service.models import SigningKeyInfo
from jwt.algorithms import OKPAlgorithm

from tracseq_kit.events import Outbox

__all__ = [
    "ALGORITHM",
    "KeyRing",
    "Rotation",
    "SigningKey",
    "ensure_signing_key",
    "keep_for",
    "key_info",
    "public_jwks",
    "rotate_signing_key",
]

outbox = Outbox()

ALGORITHM = "EdDSA"
"""The only algorithm this service signs with, and the only one its verifier accepts."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """The key that signs new tokens."""

    kid: str
    private_key: Ed25519PrivateKey


@dataclass(frozen=True, slots=True)
class Rotation:
    """What a rotation did: the new signer, the retired key (if any) and what was dropped."""

    kid: str
    retired: str | None
    published_until: datetime | None
    dropped: list[str]


def _new_kid(now: datetime) -> str:
    return f"{now:%Y%m%d}-{secrets.token_hex(6)}"


def _public_jwk(kid: str, private_key: Ed25519PrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = OKPAlgorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"}


def key_info(row: Any) -> SigningKeyInfo:
    """A key row as the admin API shows it (no key material)."""
    return SigningKeyInfo(
        kid=row["kid"],
        alg=row["algorithm"],
        created_at=row["created_at"],
        active=row["retired_at"] is None,
        retired_at=row["retired_at"],
        published_until=row["published_until"],
    )


class KeyRing:
    """Reads, creates and rotates the signing keys; caches decrypted and parsed keys by kid.

    ``fernet`` encrypts private keys; a stored key it cannot decrypt (the encryption key
    changed without keeping the old one) raises ``cryptography.fernet.InvalidToken``.
    """

    def __init__(self, fernet: MultiFernet) -> None:
        self._fernet = fernet
        self._private: dict[str, Ed25519PrivateKey] = {}
        self._public: dict[str, jwt.PyJWK] = {}

    def _unseal(self, kid: str, sealed: bytes) -> Ed25519PrivateKey:
        key = self._private.get(kid)
        if key is None:
            loaded = serialization.load_pem_private_key(self._fernet.decrypt(sealed), None)
            if not isinstance(loaded, Ed25519PrivateKey):
                raise TypeError(f"signing key {kid!r} is not an Ed25519 key")
            key = self._private[kid] = loaded
        return key

    def _seal(self, private_key: Ed25519PrivateKey) -> bytes:
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return self._fernet.encrypt(pem)

    async def _insert(self, conn: Any, now: datetime) -> str:
        private_key = Ed25519PrivateKey.generate()
        kid = _new_kid(now)
        await store.insert_key(
            conn, kid, ALGORITHM, _public_jwk(kid, private_key), self._seal(private_key), now
        )
        self._private[kid] = private_key
        return kid

    async def ensure(self, conn: Any, now: datetime) -> str | None:
        """Create the first signing key if there is none (in ``conn``'s transaction);
        its kid, or None when a key already signs."""
        await store.lock_keys(conn)
        if await store.active_key(conn) is not None:
            return None
        return await self._insert(conn, now)

    async def signer(self, db: Any) -> SigningKey:
        """The key that signs now. Raises ``LookupError`` when there is none (the service
        creates one at startup)."""
        row = await store.active_key(db)
        if row is None:
            raise LookupError("no signing key; the service creates one when it starts")
        return SigningKey(row["kid"], self._unseal(row["kid"], row["private_key"]))

    async def rotate(self, conn: Any, now: datetime, *, keep_for: timedelta) -> Rotation:
        """Make a new key the signer (in ``conn``'s transaction); the old one stays
        published for ``keep_for`` (the token lifetime plus a grace), and keys whose time
        is up are dropped."""
        await store.lock_keys(conn)
        dropped = await store.drop_keys(conn, now)
        until = now + keep_for
        retired = await store.retire_active(conn, now, until)
        kid = await self._insert(conn, now)
        for gone in dropped:
            self._forget(gone)
        return Rotation(kid, retired, until if retired else None, dropped)

    async def drop_expired(self, conn: Any, now: datetime) -> list[str]:
        """Delete the keys whose publication ended; their kids."""
        dropped = await store.drop_keys(conn, now)
        for kid in dropped:
            self._forget(kid)
        return dropped

    def _forget(self, kid: str) -> None:
        self._private.pop(kid, None)
        self._public.pop(kid, None)

    async def published(self, db: Any, now: datetime) -> list[Any]:
        """The key rows in the JWKS at ``now``, newest first."""
        return await store.published_keys(db, now)

    async def verification_keys(self, db: Any, now: datetime) -> dict[str, jwt.PyJWK]:
        """The public keys that verify tokens at ``now``, by kid (parsed by PyJWT)."""
        keys: dict[str, jwt.PyJWK] = {}
        for row in await store.published_keys(db, now):
            kid = row["kid"]
            parsed = self._public.get(kid)
            if parsed is None:
                parsed = self._public[kid] = jwt.PyJWK(_jwk(row), algorithm=ALGORITHM)
            keys[kid] = parsed
        return keys


def _jwk(row: Any) -> dict[str, Any]:
    value = row["public_jwk"]
    return dict(json.loads(value) if isinstance(value, str) else value)


def public_jwks(rows: list[Any]) -> list[dict[str, Any]]:
    """The JWKS ``keys`` of key rows."""
    return [_jwk(row) for row in rows]


async def ensure_signing_key(conn: Any, ring: KeyRing, now: datetime) -> str | None:
    """Create the first signing key when none signs, in ``conn``'s transaction (at startup;
    safe from several instances at once) and drop keys whose publication ended; the new
    key's kid, or None when a key already signed."""
    kid = await ring.ensure(conn, now)
    if kid is not None:
        await outbox.add(conn, TOPIC, key_event("created", kid, None))
    await ring.drop_expired(conn, now)
    return kid


async def rotate_signing_key(
    conn: Any, ring: KeyRing, now: datetime, *, keep_for: timedelta, actor: str | None
) -> Rotation:
    """Rotate (see :meth:`KeyRing.rotate`) and emit ``tracseq.auth.key.rotated``, in
    ``conn``'s transaction."""
    rotation = await ring.rotate(conn, now, keep_for=keep_for)
    until = rotation.published_until.isoformat() if rotation.published_until else None
    event = key_event(
        "rotated", rotation.kid, actor, retired=rotation.retired, published_until=until
    )
    await outbox.add(conn, TOPIC, event)
    return rotation


def keep_for(access_token_ttl: int, grace: int) -> timedelta:
    """How long a retired key stays published: the token lifetime plus a grace."""
    return timedelta(seconds=access_token_ttl + grace)
