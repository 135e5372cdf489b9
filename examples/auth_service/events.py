"""The events the auth service emits (``tracseq.auth.*`` on ``tracseq.auth``).

Each names who or what changed and who did it (the ``actor`` extension); none carries a
password, a secret, a token or a digest of one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from examples.auth_service.scopes import ordered

from tracseq_kit.events import CloudEvent

TOPIC = "tracseq.auth"
SOURCE = "/auth-service"


def _event(kind: str, subject: str, actor: str | None, data: dict[str, Any]) -> CloudEvent[Any]:
    return CloudEvent[Any](
        source=SOURCE,
        type=f"tracseq.auth.{kind}",
        subject=subject,
        data=data,
        extensions={"actor": actor} if actor else {},
    )


def user_event(
    kind: str, username: str, scopes: Iterable[str], actor: str | None
) -> CloudEvent[Any]:
    """``tracseq.auth.user.<kind>`` (created, disabled, enabled, scopes_changed,
    password_reset) about ``username``."""
    data = {"username": username, "scopes": list(ordered(scopes))}
    return _event(f"user.{kind}", f"user/{username}", actor, data)


def client_event(
    kind: str, client_id: str, scopes: Iterable[str], actor: str | None
) -> CloudEvent[Any]:
    """``tracseq.auth.client.<kind>`` (created, disabled, enabled, scopes_changed,
    secret_rotated) about robot client ``client_id``."""
    data = {"client_id": client_id, "scopes": list(ordered(scopes))}
    return _event(f"client.{kind}", f"client/{client_id}", actor, data)


def key_event(
    kind: str, kid: str, actor: str | None, *, retired: str | None = None, **extra: Any
) -> CloudEvent[Any]:
    """``tracseq.auth.key.<kind>`` (created, rotated) about signing key ``kid``."""
    data = {"kid": kid, "retired_kid": retired, **extra}
    return _event(f"key.{kind}", f"key/{kid}", actor, data)


def refresh_reuse_event(username: str, client_id: str) -> CloudEvent[Any]:
    """``tracseq.auth.refresh_token.reused``: a rotated refresh token came back, so its
    whole family was revoked (the token was copied, or a client replayed it)."""
    data = {"username": username, "client_id": client_id}
    return _event("refresh_token.reused", f"user/{username}", None, data)
