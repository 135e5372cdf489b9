"""Per request: verify the gateway's assertion and put the identity in the ASGI scope."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.asgi._types import ASGIApp, Receive, Scope, Send
from tracseq_kit.identity._assertion import AssertionVerifier, InvalidAssertion, parse_public_keys
from tracseq_kit.identity._identity import IDENTITY_HEADER, Identity

__all__ = ["IdentityMiddleware", "KeyFile"]

log = logging.getLogger("tracseq_kit.identity")

_HEADER = IDENTITY_HEADER.encode()


class _Verifies(Protocol):
    def verify(self, token: bytes) -> Identity: ...


class KeyFile:
    """The gateway's public keys read from a file, and read again when it changes.

    The file holds ``kid=<id>`` lines each followed by a PEM block (see
    :func:`~tracseq_kit.identity.parse_public_keys`). Its modification time is looked at
    no more than once per ``check_interval`` seconds; a changed file is loaded and used
    from then on, so keys rotate without a restart (install the next public key, then
    let the gateway sign with it). A file that changes into something unreadable keeps
    the keys already loaded and logs an error.

    Raises :class:`~tracseq_kit.ConfigurationError` when the file cannot be read at
    construction or holds no valid Ed25519 public key.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        audience: str,
        leeway: float = 5.0,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = Path(path)
        self._audience = audience
        self._leeway = leeway
        self._interval = check_interval
        self._clock = clock
        self._stamp = self._stat()
        self._verifier = self._load()
        self._checked = clock()

    @property
    def path(self) -> Path:
        """The file the keys come from."""
        return self._path

    def verify(self, token: bytes) -> Identity:
        """As :meth:`AssertionVerifier.verify`, with the file's current keys."""
        now = self._clock()
        if now - self._checked >= self._interval:
            self._checked = now
            self._refresh()
        return self._verifier.verify(token)

    def _stat(self) -> tuple[float, int]:
        try:
            st = self._path.stat()
        except OSError as exc:
            raise ConfigurationError(f"identity keys: cannot read {self._path}: {exc}") from None
        return (st.st_mtime, st.st_size)

    def _load(self) -> AssertionVerifier:
        try:
            text = self._path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigurationError(f"identity keys: cannot read {self._path}: {exc}") from None
        keys = parse_public_keys(text)
        if not keys:
            raise ConfigurationError(f"identity keys: {self._path} holds no PEM public key")
        return AssertionVerifier(keys, audience=self._audience, leeway=self._leeway)

    def _refresh(self) -> None:
        try:
            stamp = self._stat()
            if stamp == self._stamp:
                return
            self._verifier = self._load()
            self._stamp = stamp
            log.info("identity keys reloaded from %s", self._path)
        except ConfigurationError as exc:
            log.error("%s; keeping the keys loaded before", exc)


class IdentityMiddleware:
    """Pure ASGI: the verified :class:`Identity` of each request in ``scope["state"]``.

    Sets ``scope["state"]["identity"]`` (Starlette's ``request.state.identity``) to the
    identity of the one ``X-Tracseq-Identity`` assertion when ``verifier`` accepts it,
    else to None: no assertion, more than one, one that fails verification (its reason
    goes to ``scope["state"]["identity_error"]`` and the log), or no ``verifier`` at
    all. With ``anonymous`` given, a request that carries no assertion gets that
    identity instead (development without authentication); an invalid one still gets
    None.

    ``verifier`` is an :class:`AssertionVerifier` or a :class:`KeyFile`. Nothing is
    refused here: a route that needs an identity answers 401 itself.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: AssertionVerifier | KeyFile | None,
        anonymous: Identity | None = None,
    ) -> None:
        self.app = app
        self._verifier: _Verifies | None = verifier
        self._anonymous = anonymous
        self._last_warning = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            state = scope.setdefault("state", {})
            state["identity"] = self._identify(scope, state)
        await self.app(scope, receive, send)

    def _identify(self, scope: Scope, state: dict[str, object]) -> Identity | None:
        token: bytes | None = None
        for name, value in scope["headers"]:
            if name == _HEADER:
                if token is not None:
                    return self._refuse(state, "more than one identity assertion")
                token = value
        if token is None:
            return self._anonymous
        if self._verifier is None:
            return self._refuse(state, "this service is configured without identity keys")
        try:
            return self._verifier.verify(token)
        except InvalidAssertion as exc:
            return self._refuse(state, str(exc))

    def _refuse(self, state: dict[str, object], reason: str) -> Identity | None:
        """No identity, and why (the 401 says it; the log says it once a second)."""
        state["identity_error"] = reason
        now = time.monotonic()
        if now - self._last_warning >= 1.0:  # a flood of forgeries is one line a second
            self._last_warning = now
            log.warning("identity assertion refused: %s", reason)
        return None
