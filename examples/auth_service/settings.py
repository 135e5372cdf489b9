"""The auth service's settings: ``TRACSEQ_AUTH_*`` variables."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from typing import Annotated, Any

from cryptography.fernet import Fernet, MultiFernet
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from tracseq_kit.settings import ServiceSettings

_StrList = Annotated[list[str], NoDecode]


class AuthServiceSettings(ServiceSettings, env_prefix="TRACSEQ_AUTH_"):
    """``TRACSEQ_AUTH_*`` variables. Lists accept a JSON array or a comma-separated string.

    Construction raises :class:`~tracseq_kit.ConfigurationError` naming each offending
    variable: ``TRACSEQ_AUTH_KEY_ENCRYPTION_KEY`` is required and must hold Fernet keys.
    """

    service_name: str = "auth_service"
    port: int = 8089
    postgres_dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/postgres")
    kafka_bootstrap: str | None = None
    redis_url: SecretStr | None = None
    """Where the brute-force limits are counted, shared by every instance; in this
    process's memory when unset."""
    redis_prefix: str = "tracseq:auth:"
    """Prefix of the brute-force counters' Redis keys."""

    issuer: str = "http://127.0.0.1:8089"
    """The ``iss`` of every token and the public base URL of this service (the device page
    is ``<issuer>/device``)."""
    audience: str = Field(default="tracseq", min_length=1)
    """The ``aud`` of every token."""
    access_token_ttl: int = Field(default=900, ge=60, le=86_400)
    """Seconds an access token lives."""
    refresh_token_ttl: int = Field(default=30 * 86_400, ge=300)
    """Seconds a refresh token lives unused (each use gives a new one)."""
    device_code_ttl: int = Field(default=600, ge=60, le=3600)
    """Seconds a person has to approve a device login."""
    device_poll_interval: int = Field(default=5, ge=1, le=60)
    """Seconds a device must wait between polls (``slow_down`` adds 5 each time)."""
    public_clients: _StrList = Field(default_factory=lambda: ["tracseq-cli"])
    """Client ids that may start a device login and refresh without a secret (the CLI)."""

    key_encryption_key: SecretStr
    """Fernet key(s) that encrypt the signing keys stored in PostgreSQL; several separated
    by commas to change it: the first encrypts, every one decrypts. Make one with
    ``python -m examples.auth_service.manage new-encryption-key``."""
    jwks_max_age: int = Field(default=300, ge=0, le=86_400)
    """``Cache-Control: max-age`` of the JWKS, in seconds."""
    key_publish_grace: int = Field(default=60, ge=0)
    """Seconds a retired key stays in the JWKS beyond the last token it signed (clock skew)."""

    housekeeping_interval: float = Field(default=300.0, gt=0)
    """Seconds between rounds that delete dropped keys, expired device logins and expired
    refresh tokens."""

    auth_failures_per_client: int = Field(default=10, ge=1)
    """Failed authentications one client id (or username) may make per period before 429."""
    auth_failures_per_address: int = Field(default=50, ge=1)
    """Failed authentications one client address may make per period before 429."""
    auth_failures_period: float = Field(default=300.0, gt=0)
    """Seconds over which failed authentications are counted."""
    trusted_proxies: _StrList = Field(default_factory=list)
    """Networks (CIDR) of proxies whose ``X-Forwarded-For`` names the client address."""

    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65_536, ge=8)
    argon2_parallelism: int = Field(default=4, ge=1)
    """Argon2id parameters of new password hashes (RFC 9106's second recommendation);
    a hash made with other parameters is upgraded at the next successful login."""

    max_body_bytes: int = 64 * 1024
    idempotency_retention: float = 86_400.0
    """Seconds an ``Idempotency-Key`` is remembered."""

    @field_validator("public_clients", "trusted_proxies", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL, e.g. https://auth.lab.example")
        return value.rstrip("/")

    @field_validator("key_encryption_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr) -> SecretStr:
        parts = [p.strip() for p in value.get_secret_value().split(",") if p.strip()]
        if not parts:
            raise ValueError("must hold at least one Fernet key")
        for part in parts:
            try:
                Fernet(part)
            except (ValueError, TypeError):
                raise ValueError(
                    "each key must be a Fernet key (32 url-safe base64 bytes); "
                    "make one with python -m examples.auth_service.manage new-encryption-key"
                ) from None
        return value

    def fernet(self) -> MultiFernet:
        """The cipher of stored signing keys (the first key encrypts, all decrypt)."""
        keys = self.key_encryption_key.get_secret_value().split(",")
        return MultiFernet([Fernet(k.strip()) for k in keys if k.strip()])

    def idempotency_pepper(self) -> bytes:
        """The secret that keys request fingerprints of password-bearing writes (derived
        from the first encryption key, so every instance agrees)."""
        first = self.key_encryption_key.get_secret_value().split(",")[0].strip()
        return hashlib.sha256(b"tracseq-auth idempotency\x00" + first.encode()).digest()

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The trusted proxies, parsed."""
        return [ipaddress.ip_network(n, strict=False) for n in self.trusted_proxies]
