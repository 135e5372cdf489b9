"""Authentication at the gateway: JWT bearer tokens and API keys.

JWTs are verified with PyJWT against an explicit algorithm allowlist (HS256, RS256,
ES256, EdDSA), and each key is bound to one algorithm, so a token whose header names
another algorithm than its key's (``alg: none``, or HS256 "signed" with a public key) is
rejected before any signature math. API keys are stored as SHA-256 digests and
compared in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.gateway._config import AuthConfig, JwtConfig
from tracseq_kit.identity import Identity

__all__ = ["AuthError", "Authenticator", "hash_api_key"]

log = logging.getLogger("tracseq_kit.gateway")

IDENTITY_PREFIX = b"x-tracseq-identity"
"""Incoming headers starting with this are never forwarded: the gateway alone asserts
identity (``X-Tracseq-Identity``), and older ``X-Tracseq-Identity-*`` headers are dropped."""
# printable ASCII without control characters (what an identity header may carry)
_HEADER_SAFE = re.compile(r"[\x20-\x7e]{0,1024}")


_JWKS_RETRY = 5.0
"""Seconds before a failed JWKS fetch is tried again."""
_JWKS_WAIT_MAX = 1.0
"""Longest a request with an unknown key id waits for the next allowed JWKS fetch."""


class AuthError(Exception):
    """The request carries no valid credentials; the message says why (sent as detail)."""


def hash_api_key(key: str) -> str:
    """The hex SHA-256 of an API key, as stored in the gateway configuration."""
    return hashlib.sha256(key.encode()).hexdigest()


class _JwtVerifier:
    def __init__(self, cfg: JwtConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        import jwt

        self._jwt = jwt
        self._cfg = cfg
        self._clock = clock
        self._static: list[tuple[str | None, str, Any]] = []
        for key in cfg.keys:
            if key.alg == "HS256":
                material: Any = key.secret
            else:
                pem = key.public_key
                if pem is None:
                    assert key.public_key_file is not None
                    with open(key.public_key_file) as fh:
                        pem = fh.read()
                material = _public_key(pem, key.alg)
            self._static.append((key.kid, key.alg, material))
        self._jwks: list[tuple[str | None, str, Any]] = []
        self._jwks_fetched = -1e18  # the last fetch that worked
        self._jwks_tried = -1e18  # the last fetch
        self._jwks_lock = asyncio.Lock()

    async def _jwks_keys(self, force: bool = False) -> list[tuple[str | None, str, Any]]:
        """The keys of ``jwks_url``: cached, fetched again when stale or when ``force``d
        (an unknown key id) if the last fetch is old enough. One fetch at a time: callers
        arriving meanwhile wait for its result."""
        url = self._cfg.jwks_url
        if url is None:
            return []
        if not self._jwks_due(force):
            if not force:
                return self._jwks
            # an unknown kid right after a fetch (the issuer rotated its key a moment
            # ago): wait out a short floor and look again, rather than refuse the token
            wait = self._cfg.jwks_min_refresh_seconds - (self._clock() - self._jwks_tried)
            if wait > _JWKS_WAIT_MAX:
                return self._jwks
            await asyncio.sleep(max(wait, 0.0))
        async with self._jwks_lock:
            if self._jwks_due(force):  # nobody fetched while this caller waited
                await self._fetch_jwks(url)
        return self._jwks

    def _jwks_due(self, force: bool) -> bool:
        now = self._clock()
        since_try = now - self._jwks_tried
        if now - self._jwks_fetched >= self._cfg.jwks_cache_seconds:
            failed = self._jwks_tried > self._jwks_fetched  # the last fetch did not work
            if not failed or since_try >= _JWKS_RETRY:
                return True
        # unknown key ids cannot make the gateway hammer the issuer, nor wait on it
        return force and since_try >= self._cfg.jwks_min_refresh_seconds

    async def _fetch_jwks(self, url: str) -> None:
        now = self._jwks_tried = self._clock()
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                resp = await client.get(url)
                resp.raise_for_status()
                data = resp.json()
            keys: list[tuple[str | None, str, Any]] = []
            for jwk in self._jwt.PyJWKSet.from_dict(data).keys:
                alg = jwk.algorithm_name
                if alg in self._cfg.algorithms:
                    keys.append((jwk.key_id, alg, jwk.key))
            self._jwks = keys
            self._jwks_fetched = now
        except (httpx.HTTPError, ValueError, self._jwt.PyJWTError) as exc:
            log.warning("cannot refresh JWKS from %s: %s", url, exc)  # keep the keys known

    async def verify(self, token: str) -> Identity:
        jwt = self._jwt
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed token: {exc}") from None
        alg = header.get("alg")
        if alg not in self._cfg.algorithms:
            raise AuthError(f"token algorithm {alg!r} is not allowed")
        kid = header.get("kid")
        candidates = self._select(self._static + await self._jwks_keys(), alg, kid)
        if not candidates and self._cfg.jwks_url:
            candidates = self._select(await self._jwks_keys(force=True), alg, kid)
        if not candidates:
            raise AuthError("no key matches the token's algorithm and key id")
        last: Exception | None = None
        for material in candidates:
            try:
                claims = jwt.decode(
                    token,
                    material,
                    algorithms=[alg],
                    issuer=self._cfg.issuer,
                    audience=self._cfg.audience,
                    leeway=self._cfg.leeway,
                    options={"require": ["exp", "sub"]},
                )
            except jwt.InvalidSignatureError as exc:
                last = exc
                continue
            except jwt.PyJWTError as exc:
                raise AuthError(f"invalid token: {exc}") from None
            return _identity(claims, self._cfg.scopes_claim)
        raise AuthError(f"invalid token: {last}")

    @staticmethod
    def _select(keys: list[tuple[str | None, str, Any]], alg: str, kid: str | None) -> list[Any]:
        # A key is only ever used with its own algorithm: this is what defeats key
        # confusion, independently of PyJWT's own checks.
        return [m for k, a, m in keys if a == alg and (kid is None or k is None or k == kid)]


def _identity(claims: Any, scopes_claim: str) -> Identity:
    """The identity a verified token's claims describe; :class:`AuthError` when a claim
    has a type or characters it may not have (a signed token is still untrusted input)."""
    if not isinstance(claims, dict):
        raise AuthError("invalid token: the claims are not a JSON object")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthError("invalid token: claim 'sub' must be a non-empty string")
    issuer = claims.get("iss")
    if issuer is not None and not isinstance(issuer, str):
        raise AuthError("invalid token: claim 'iss' must be a string")
    scopes = claims.get(scopes_claim)
    if scopes is None:
        scopes = ()
    elif isinstance(scopes, str):
        scopes = tuple(scopes.split())
    elif isinstance(scopes, list) and all(isinstance(s, str) for s in scopes):
        scopes = tuple(scopes)
    else:
        raise AuthError(
            f"invalid token: claim {scopes_claim!r} must be a string or a list of strings"
        )
    # claim values become header values upstream: refuse header injection
    if any(not _HEADER_SAFE.fullmatch(v) for v in (subject, *scopes, issuer or "")):
        raise AuthError("token claims contain characters not allowed in headers")
    kind = claims.get("kind")
    if kind is not None and kind not in ("user", "client"):
        raise AuthError("invalid token: claim 'kind' must be 'user' or 'client'")
    return Identity(subject=subject, method="jwt", scopes=scopes, issuer=issuer, kind=kind)


def _public_key(pem: str, alg: str) -> Any:
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    algo: Any
    if alg == "RS256":
        algo = RSAAlgorithm(RSAAlgorithm.SHA256)
    elif alg == "ES256":
        algo = ECAlgorithm(ECAlgorithm.SHA256)
    else:
        algo = OKPAlgorithm()
    try:
        key = algo.prepare_key(pem)
    except Exception as exc:
        raise ConfigurationError(f"cannot load the {alg} public key: {exc}") from None
    if hasattr(key, "private_bytes"):
        raise ConfigurationError(f"configure the {alg} public key, not the private key")
    return key


class Authenticator:
    """Authenticates requests from an :class:`AuthConfig`.

    :meth:`authenticate` returns an :class:`Identity` or raises :class:`AuthError`
    whose message is safe to show to the client.
    """

    def __init__(self, cfg: AuthConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._jwt = _JwtVerifier(cfg.jwt, clock=clock) if cfg.jwt else None
        self._keys = [(bytes.fromhex(k.sha256), k) for k in cfg.api_keys]
        self.api_key_header = cfg.api_key_header.lower().encode()

    async def authenticate(self, headers: Mapping[bytes, bytes]) -> Identity:
        """Check the Authorization bearer token or the API key header."""
        auth = headers.get(b"authorization")
        if auth is not None and self._jwt is not None:
            scheme, _, token = auth.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError("use 'Authorization: Bearer <token>'")
            return await self._jwt.verify(token.strip())
        presented = headers.get(self.api_key_header)
        if presented is not None and self._keys:
            digest = hashlib.sha256(presented).digest()
            found = None
            for stored, cfg in self._keys:  # compare with every key: constant time
                if hmac.compare_digest(stored, digest):
                    found = cfg
            if found is None:
                raise AuthError("unknown API key")
            return Identity(subject=found.id, method="api_key", scopes=found.scopes, kind="client")
        raise AuthError("authentication required")
