"""Identity assertions: what the gateway signs and every service verifies.

Claims: ``iss`` (``tracseq-gateway``), ``aud``, ``sub``, ``scope`` (space-separated),
``amr`` (how the caller authenticated: ``jwt``/``api_key``), ``kind``, the caller's
token issuer ``idp``, ``iat``, ``exp`` and ``jti``. Signing costs tens of microseconds,
so an assertion is reused for the same identity and audience for half its lifetime.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Final

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.identity._identity import Identity

__all__ = [
    "ASSERTION_ISSUER",
    "AssertionSigner",
    "AssertionVerifier",
    "InvalidAssertion",
    "generate_keypair",
    "parse_public_keys",
    "public_pem_of",
]

ASSERTION_ISSUER: Final = "tracseq-gateway"
_ALGORITHM: Final = "EdDSA"
_LONGEST: Final = 300
"""Seconds an assertion may live at most (what the signer allows)."""


class InvalidAssertion(Exception):
    """An identity assertion that must not be believed; the message says why."""


def generate_keypair() -> tuple[str, str]:
    """A new Ed25519 key pair as PEM text: (private, public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return private, public_pem_of(private)


def public_pem_of(private_pem: str) -> str:
    """The public key (PEM) of an Ed25519 private key (PEM).

    Raises :class:`~tracseq_kit.ConfigurationError` when it is not one.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigurationError(f"not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError("the identity signing key must be an Ed25519 key")
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


class AssertionSigner:
    """Signs assertions with an Ed25519 private key (PEM), valid ``ttl`` seconds.

    ``key_id`` names the key (``kid``), so services can hold the next key before it is
    used. Raises :class:`~tracseq_kit.ConfigurationError` for a key that is not Ed25519
    or a ttl outside 1-300 s.
    """

    def __init__(
        self,
        private_key_pem: str,
        *,
        key_id: str,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import jwt

        if not 1 <= ttl <= 300:
            raise ConfigurationError("an identity assertion lives 1 to 300 seconds")
        public_pem_of(private_key_pem)  # refuses anything but Ed25519
        self._jwt = jwt
        self._key: Any = jwt.algorithms.OKPAlgorithm().prepare_key(private_key_pem)
        self._kid = key_id
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[tuple[Identity, str], tuple[float, bytes]] = {}

    def assertion(self, identity: Identity, audience: str) -> bytes:
        """The header value asserting ``identity`` to ``audience`` (reused while fresh)."""
        now = self._clock()
        key = (identity, audience)
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        if len(self._cache) > 10_000:  # many callers: forget the old ones
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
        claims: dict[str, Any] = {
            "iss": ASSERTION_ISSUER,
            "aud": audience,
            "sub": identity.subject,
            "scope": " ".join(identity.scopes),
            "amr": identity.method,
            "iat": int(now),
            "exp": int(now + self._ttl),
            "jti": uuid.uuid4().hex,
        }
        if identity.kind:
            claims["kind"] = identity.kind
        if identity.issuer:
            claims["idp"] = identity.issuer
        token = self._jwt.encode(
            claims, self._key, algorithm=_ALGORITHM, headers={"kid": self._kid}
        ).encode()
        self._cache[key] = (now + self._ttl / 2, token)
        return token


class AssertionVerifier:
    """Verifies assertions for one ``audience`` with the gateway's public keys (PEM).

    ``public_keys`` maps key ids to PEM public keys (an assertion must name one of
    them); ``leeway`` tolerates that many seconds of clock skew. A verified assertion is
    remembered until it expires (the gateway reuses it), so a repeat costs a lookup.
    Raises
    :class:`~tracseq_kit.ConfigurationError` for a key that is not Ed25519.
    """

    def __init__(
        self,
        public_keys: dict[str, str],
        *,
        audience: str,
        leeway: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        import jwt
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        if not public_keys:
            raise ConfigurationError("an identity verifier needs at least one public key")
        self._jwt = jwt
        self._keys: dict[str, Any] = {}
        for kid, pem in public_keys.items():
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            try:
                key = load_pem_public_key(pem.encode())
            except (ValueError, TypeError) as exc:
                raise ConfigurationError(f"identity key {kid!r} is not a PEM key: {exc}") from None
            if not isinstance(key, Ed25519PublicKey):
                raise ConfigurationError(f"identity key {kid!r} must be an Ed25519 public key")
            self._keys[kid] = key
        self._audience = audience
        self._leeway = leeway
        self._clock = clock
        # the gateway reuses an assertion for half its life: verify each once
        self._verified: dict[bytes, tuple[float, Identity]] = {}

    def verify(self, token: bytes) -> Identity:
        """The identity a valid assertion names; :class:`InvalidAssertion` otherwise
        (a bad signature, another audience, expired, an unknown key, another algorithm,
        a claim of the wrong type)."""
        hit = self._verified.get(token)
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        identity, expires = self._verify(token)
        if len(self._verified) > 10_000:  # many callers: forget the expired ones
            now = self._clock()
            self._verified = {k: v for k, v in self._verified.items() if v[0] > now}
        self._verified[token] = (expires, identity)
        return identity

    def _verify(self, token: bytes) -> tuple[Identity, float]:
        jwt = self._jwt
        raw = token.decode("latin-1")
        try:
            header = jwt.get_unverified_header(raw)
            kid = header.get("kid")
            key = self._keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise InvalidAssertion("the assertion names no known key")
            if header.get("alg") != _ALGORITHM:
                raise InvalidAssertion("the assertion is not EdDSA-signed")
            claims = jwt.decode(
                raw,
                key,
                algorithms=[_ALGORITHM],
                audience=self._audience,
                issuer=ASSERTION_ISSUER,
                options={
                    "require": ["exp", "iat", "sub", "aud", "iss"],
                    # the times are checked below, against this verifier's clock
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError as exc:
            raise InvalidAssertion(f"invalid assertion: {exc}") from None
        expires = self._check_times(claims)
        return _identity(claims), expires

    def _check_times(self, claims: dict[str, Any]) -> float:
        """When the assertion stops being valid (with the leeway); it must be now."""
        exp, iat = claims["exp"], claims["iat"]
        for value in (exp, iat):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidAssertion("the assertion's times are not numbers")
        now = self._clock()
        if now > exp + self._leeway:
            raise InvalidAssertion("the assertion has expired")
        if iat > now + self._leeway:
            raise InvalidAssertion("the assertion was issued in the future")
        if exp - iat > _LONGEST:
            raise InvalidAssertion("the assertion claims a lifetime longer than 300 s")
        return float(exp) + self._leeway


def _identity(claims: dict[str, Any]) -> Identity:
    subject, scope = claims.get("sub"), claims.get("scope", "")
    method, kind, issuer = claims.get("amr", "jwt"), claims.get("kind"), claims.get("idp")
    if not isinstance(subject, str) or not subject or not isinstance(scope, str):
        raise InvalidAssertion("the assertion's claims have the wrong types")
    for value in (method, kind, issuer):
        if value is not None and not isinstance(value, str):
            raise InvalidAssertion("the assertion's claims have the wrong types")
    return Identity(
        subject=subject, method=method, scopes=tuple(scope.split()), issuer=issuer, kind=kind
    )


def parse_public_keys(text: str) -> dict[str, str]:
    """``kid=<id>`` lines each followed by a PEM block (or one bare PEM block, whose key
    id is ``default``) into a map of key id to PEM.

    Raises :class:`~tracseq_kit.ConfigurationError` for text of another shape (the keys
    themselves are checked by :class:`AssertionVerifier`).
    """
    keys: dict[str, str] = {}
    kid: str | None = None
    block: list[str] = []
    for number, raw in enumerate(text.strip().splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if not block and line.startswith("kid="):
            kid = line[4:].strip()
            if not kid:
                raise ConfigurationError(f"identity keys, line {number}: an empty key id")
            continue
        if not block and not line.startswith("-----BEGIN"):
            raise ConfigurationError(
                f"identity keys, line {number}: expected 'kid=<id>' or a PEM block "
                "('-----BEGIN PUBLIC KEY-----')"
            )
        block.append(line)
        if line.startswith("-----END"):
            name = kid or "default"
            if name in keys:
                raise ConfigurationError(f"identity keys: key id {name!r} given twice")
            keys[name] = "\n".join(block) + "\n"
            block, kid = [], None
    if block:
        raise ConfigurationError("identity keys: a PEM block is not closed ('-----END ...')")
    if kid is not None:
        raise ConfigurationError(f"identity keys: key id {kid!r} has no PEM block")
    return keys
