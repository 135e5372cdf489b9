"""IdentityMiddleware and KeyFile: one identity per request, keys that rotate in place."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tracseq_kit import ConfigurationError
from tracseq_kit.identity import (
    ANONYMOUS,
    AssertionSigner,
    AssertionVerifier,
    Identity,
    IdentityMiddleware,
    KeyFile,
    generate_keypair,
)

pytestmark = pytest.mark.anyio

PRIVATE, PUBLIC = generate_keypair()
NEXT_PRIVATE, NEXT_PUBLIC = generate_keypair()
ALICE = Identity(subject="alice", method="jwt", scopes=("templates:read",))


async def _seen(
    headers: list[tuple[bytes, bytes]], **options: Any
) -> tuple[Identity | None, str | None]:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope["state"])

    middleware = IdentityMiddleware(app, **options)
    await middleware({"type": "http", "headers": headers}, None, None)  # type: ignore[arg-type]
    return seen["identity"], seen.get("identity_error")


def _assertion(private: str = PRIVATE, kid: str = "gw-1") -> bytes:
    return AssertionSigner(private, key_id=kid).assertion(ALICE, "svc")


VERIFIER = AssertionVerifier({"gw-1": PUBLIC}, audience="svc")


async def test_one_valid_assertion_is_the_identity() -> None:
    assert await _seen([(b"x-tracseq-identity", _assertion())], verifier=VERIFIER) == (
        ALICE,
        None,
    )


async def test_no_assertion_is_no_identity_whatever_else_the_request_says() -> None:
    forged = [(b"x-tracseq-identity-subject", b"admin"), (b"x-tracseq-identity-scopes", b"admin")]
    assert await _seen(forged, verifier=VERIFIER) == (None, None)


async def test_two_assertions_are_none_even_when_both_are_valid() -> None:
    token = _assertion()
    identity, error = await _seen(
        [(b"x-tracseq-identity", token), (b"x-tracseq-identity", token)], verifier=VERIFIER
    )
    assert identity is None and error == "more than one identity assertion"


async def test_a_forged_assertion_is_none_with_the_reason() -> None:
    identity, error = await _seen(
        [(b"x-tracseq-identity", _assertion(NEXT_PRIVATE))], verifier=VERIFIER
    )
    assert identity is None and error is not None and "invalid assertion" in error


async def test_without_keys_nothing_is_believed() -> None:
    identity, error = await _seen([(b"x-tracseq-identity", _assertion())], verifier=None)
    assert identity is None and error is not None and "without identity keys" in error


async def test_anonymous_access_covers_requests_without_an_assertion_only() -> None:
    assert await _seen([], verifier=VERIFIER, anonymous=ANONYMOUS) == (ANONYMOUS, None)
    assert ANONYMOUS.allows(["anything:write"])
    bad = [(b"x-tracseq-identity", b"not-a-jwt")]
    identity, _ = await _seen(bad, verifier=VERIFIER, anonymous=ANONYMOUS)
    assert identity is None


async def test_other_scopes_pass_through_untouched() -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    await IdentityMiddleware(app, verifier=VERIFIER)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert "state" not in seen[0]


def _write(path: Path, text: str, *, mtime: float) -> None:
    path.write_text(text)
    os.utime(path, (mtime, mtime))


async def test_a_key_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "identity-keys.pem"
    _write(path, f"kid=gw-1\n{PUBLIC}", mtime=1_000)
    clock = [0.0]
    keys = KeyFile(path, audience="svc", check_interval=1.0, clock=lambda: clock[0])
    assert keys.verify(_assertion()) == ALICE
    with pytest.raises(Exception, match="no known key"):
        keys.verify(_assertion(NEXT_PRIVATE, "gw-2"))
    # rotation: the next key is installed next to the current one
    _write(path, f"kid=gw-1\n{PUBLIC}\nkid=gw-2\n{NEXT_PUBLIC}", mtime=2_000)
    clock[0] = 1.5
    assert keys.verify(_assertion(NEXT_PRIVATE, "gw-2")) == ALICE
    # ... then the old one is removed: its assertions stop counting
    _write(path, f"kid=gw-2\n{NEXT_PUBLIC}", mtime=3_000)
    clock[0] = 3.0
    with pytest.raises(Exception, match="no known key"):
        keys.verify(_assertion())


async def test_a_broken_key_file_keeps_the_keys_loaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "identity-keys.pem"
    _write(path, f"kid=gw-1\n{PUBLIC}", mtime=1_000)
    clock = [0.0]
    keys = KeyFile(path, audience="svc", clock=lambda: clock[0])
    _write(path, "kid=gw-1\n-----BEGIN PUBLIC KEY-----\ntruncated", mtime=2_000)
    clock[0] = 5.0
    assert keys.verify(_assertion()) == ALICE
    assert "keeping the keys loaded before" in caplog.text


def test_a_key_file_that_cannot_be_used_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        KeyFile(tmp_path / "missing.pem", audience="svc")
    empty = tmp_path / "empty.pem"
    empty.write_text("\n")
    with pytest.raises(ConfigurationError, match="no PEM public key"):
        KeyFile(empty, audience="svc")
