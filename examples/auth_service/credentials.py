"""Passwords, client secrets, refresh tokens, device codes and user codes.

- **Passwords** (chosen by people, so guessable) are hashed with Argon2id through
  argon2-cffi: memory-hard, salted, its parameters inside each hash so they can be raised
  later (a login upgrades an older hash). Hashing runs in a worker thread: it takes tens of
  milliseconds of CPU on purpose and must not stall the event loop.
- **Secrets this service makes** (client secrets, refresh tokens, device codes) carry 256
  random bits, so a fast SHA-256 digest is as safe to store as a slow hash (nobody can
  enumerate 2**256 candidates) and keeps the token endpoint cheap. They are compared in
  constant time. A prefix (``tsq_cs_``, ``tsq_rt_``) lets secret scanners spot a leaked one.
- **User codes** are what a person types: eight letters from an alphabet without vowels
  (no words) and without look-alikes (no 0/O, 1/I/L, 2/Z, 5/S, 8/B), shown as
  ``WDJX-MJHT``; case, spaces and dashes do not matter when typed back (RFC 8628 §6.1).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "USER_CODE_ALPHABET",
    "Passwords",
    "digest",
    "format_user_code",
    "matches",
    "new_secret",
    "new_user_code",
    "normalize_user_code",
]

USER_CODE_ALPHABET = "CDFGHJKMNPQRTVWX"
"""16 consonants none of which is easily mistaken for another letter or a digit."""
USER_CODE_LENGTH = 8
CLIENT_SECRET_PREFIX = "tsq_cs_"
REFRESH_TOKEN_PREFIX = "tsq_rt_"


class Passwords:
    """Argon2id password hashing with the given parameters (argon2-cffi's
    ``PasswordHasher``). :meth:`verify` never raises for a wrong password or a missing user:
    it answers ``False``, after the same work as for a real user (no timing hint)."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65_536, parallelism: int = 4):
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        """The encoded Argon2id hash of ``password`` (salt and parameters included)."""
        return await anyio.to_thread.run_sync(self._hasher.hash, password)

    async def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches ``stored``; ``stored=None`` (no such user) does the
        same work against a decoy and answers ``False``."""
        return await anyio.to_thread.run_sync(self._verify, stored, password)

    def _verify(self, stored: str | None, password: str) -> bool:
        try:
            self._hasher.verify(stored or self._decoy, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return stored is not None

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was made with other parameters than this hasher's."""
        return self._hasher.check_needs_rehash(stored)


def new_secret(prefix: str = "") -> str:
    """A new secret of 256 random bits, url-safe, after ``prefix``."""
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """The stored form of a secret this service made (hex SHA-256)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(stored: str | None, presented: str) -> bool:
    """Whether ``presented`` is the secret whose digest is ``stored`` (constant time; a
    missing ``stored`` is compared too, so both answers take as long)."""
    expected = stored if stored is not None else "0" * 64
    return hmac.compare_digest(expected, digest(presented)) and stored is not None


def new_user_code(choice: Callable[[Sequence[str]], str] = secrets.choice) -> str:
    """A fresh user code in canonical form (eight letters of :data:`USER_CODE_ALPHABET`,
    32 random bits); ``choice`` is injectable for tests."""
    return "".join(choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def format_user_code(code: str) -> str:
    """How a canonical user code is shown: ``WDJXMJHT`` → ``WDJX-MJHT``."""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def normalize_user_code(typed: str) -> str | None:
    """The canonical code of what a person typed (case, spaces and dashes ignored), or
    ``None`` when it cannot be a user code (wrong length or a letter outside the alphabet)."""
    code = "".join(c for c in typed.upper() if c not in " -\t")
    if len(code) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in code):
        return None
    return code
