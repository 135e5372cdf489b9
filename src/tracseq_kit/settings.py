"""Service settings: pydantic-settings classes read from ``TRACSEQ_<SERVICE>_...`` variables.

Each service subclasses :class:`ServiceSettings` and gives its own prefix::

    class TemplateSettings(ServiceSettings, env_prefix="TRACSEQ_TEMPLATES_"):
        service_name: str = "templates"
        database_url: SecretStr

Values come from keyword arguments, then environment variables, then a ``.env`` file in
the working directory, then defaults. Secrets are ``SecretStr`` (never printed in reprs
or logs). Construction fails with :class:`~tracseq_kit.ConfigurationError` whose message
names every offending environment variable (values are never echoed: they may be secret).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from tracseq_kit._exceptions import ConfigurationError

__all__ = ["ServiceSettings"]

_StrList = Annotated[list[str], NoDecode]


class ServiceSettings(BaseSettings):
    """Settings every service built with ``create_service`` understands.

    Lists (``cors_origins`` …) accept a JSON array or a comma-separated string.
    Raises ``ConfigurationError`` naming the variables when a value is invalid,
    including a wildcard CORS origin combined with credentials.
    """

    model_config = SettingsConfigDict(
        env_prefix="TRACSEQ_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
    )

    service_name: str = Field(default="tracseq-service", min_length=1)
    """Name in logs, spans (unless ``OTEL_SERVICE_NAME`` is set) and the OpenAPI title."""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    """``auto``: JSON lines, or readable text when stdout is a terminal."""
    access_log: bool = False
    """Log one line per request (method, route, status, duration, ids). Off by default:
    the line costs about 35 µs per request (see docs/benchmarks.md) and the gateway
    already logs every request at the edge; errors are always logged."""
    max_body_bytes: int = Field(default=1_048_576, ge=0)
    """Larger request bodies are refused with 413."""
    shutdown_timeout: float = Field(default=30.0, gt=0)
    """Seconds in-flight requests get to finish on shutdown before resources close."""
    cors_origins: _StrList = Field(default_factory=list)
    """Allowed CORS origins; empty turns CORS off. ``*`` allows any origin."""
    cors_allow_credentials: bool = False
    cors_allow_methods: _StrList = Field(
        default_factory=lambda: ["GET", "POST", "PUT", "PATCH", "DELETE"]
    )
    cors_allow_headers: _StrList = Field(default_factory=lambda: ["*"])
    metrics_path: str = "/metrics"
    """Path of the Prometheus endpoint; empty turns it off."""
    identity_keys: str | None = None
    """The gateway's public keys for identity assertions: ``kid=<id>`` lines, each
    followed by a PEM Ed25519 public key. Without keys (here or in
    ``identity_keys_file``) no request has an identity."""
    identity_keys_file: str | None = None
    """A file holding the keys instead, read again when it changes (rotation without a
    restart)."""
    identity_audience: str | None = None
    """The audience assertions must be for; default: ``service_name``."""
    allow_anonymous: bool = False
    """Requests without an assertion act as ``anonymous``, holding every scope: for
    development without authentication only (``tracseq dev --no-auth``)."""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError(_describe(type(self), exc)) from None

    @field_validator("cors_origins", "cors_allow_methods", "cors_allow_headers", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not a JSON array: {exc.msg}") from None
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("cors_allow_credentials")
    @classmethod
    def _no_wildcard_with_credentials(cls, value: bool, info: ValidationInfo) -> bool:
        if value and "*" in info.data.get("cors_origins", []):
            raise ValueError(
                "credentials cannot be allowed for the wildcard origin '*'; "
                "list the allowed origins explicitly"
            )
        return value

    @field_validator("identity_keys")
    @classmethod
    def _parse_identity_keys(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            from tracseq_kit.identity import AssertionVerifier, parse_public_keys

            try:
                keys = parse_public_keys(value)
                AssertionVerifier(keys, audience="check")
            except ConfigurationError as exc:
                raise ValueError(str(exc)) from None
        return value or None

    @field_validator("identity_keys_file")
    @classmethod
    def _one_identity_key_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and info.data.get("identity_keys"):
            raise ValueError("give identity_keys or identity_keys_file, not both")
        return value or None

    @classmethod
    def env_name(cls, field: str) -> str:
        """Return the environment variable that sets ``field`` (e.g. ``TRACSEQ_X_PORT``)."""
        info = cls.model_fields.get(field)
        alias = info.validation_alias if info is not None else None
        if isinstance(alias, str):
            return alias.upper()
        prefix = cls.model_config.get("env_prefix") or ""
        return f"{prefix}{field}".upper()


def _describe(cls: type[ServiceSettings], exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in error["loc"]]
        name = cls.env_name(loc[0]) if loc else "settings"
        where = name + "".join(f"[{part}]" for part in loc[1:])
        lines.append(f"{where}: {error['msg']}")
    return f"invalid configuration for {cls.__name__}: " + "; ".join(lines)
