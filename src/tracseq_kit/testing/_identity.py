"""Identity assertions for tests: sign what the gateway would sign."""

from __future__ import annotations

from collections.abc import Generator, Iterable

import httpx

from tracseq_kit.identity import (
    ADMIN_SCOPE,
    IDENTITY_HEADER,
    AssertionSigner,
    Identity,
    generate_keypair,
)

__all__ = ["IdentityMinter"]


class IdentityMinter:
    """A key pair that signs identity assertions the way the gateway does, for tests of
    a service called without a gateway in front.

    Give the service ``identity_keys=minter.keys``; send ``minter.headers(...)`` with a
    request to act as someone::

        minter = IdentityMinter(audience="things_service")
        settings = MySettings(identity_keys=minter.keys)
        alice = minter.headers("alice", scopes=["things:write"])
        client.post("/api/things", json=..., headers=alice)

    ``audience`` must be the service's ``identity_audience`` (by default its
    ``service_name``); set it once here or per call.
    """

    def __init__(
        self, *, audience: str | None = None, key_id: str = "test-gateway", ttl: float = 60.0
    ) -> None:
        self.private_key, self.public_key = generate_keypair()
        self.key_id = key_id
        self.audience = audience
        self._signer = AssertionSigner(self.private_key, key_id=key_id, ttl=ttl)

    @property
    def keys(self) -> str:
        """The public key as a service's ``identity_keys`` setting takes it."""
        return f"kid={self.key_id}\n{self.public_key}"

    def assertion(self, identity: Identity, *, audience: str | None = None) -> str:
        """A signed assertion of ``identity`` for ``audience`` (default: the minter's)."""
        target = audience or self.audience
        if not target:
            raise ValueError("give the service's audience (here or to IdentityMinter)")
        return self._signer.assertion(identity, target).decode()

    def headers(
        self,
        subject: str = "tester",
        *,
        scopes: Iterable[str] = (ADMIN_SCOPE,),
        audience: str | None = None,
        kind: str = "user",
    ) -> dict[str, str]:
        """The header carrying an assertion that ``subject`` holding ``scopes`` calls."""
        identity = Identity(subject=subject, method="jwt", scopes=tuple(scopes), kind=kind)
        return {IDENTITY_HEADER: self.assertion(identity, audience=audience)}

    def auth(
        self,
        subject: str = "tester",
        *,
        scopes: Iterable[str] = (ADMIN_SCOPE,),
        audience: str | None = None,
        kind: str = "user",
    ) -> httpx.Auth:
        """An ``httpx`` auth that sends a fresh assertion of ``subject`` with every
        request (``httpx.Client(auth=minter.auth("alice"))``): a long test never sends
        an expired one."""
        return _MinterAuth(self, subject, tuple(scopes), audience, kind)


class _MinterAuth(httpx.Auth):
    def __init__(
        self,
        minter: IdentityMinter,
        subject: str,
        scopes: tuple[str, ...],
        audience: str | None,
        kind: str,
    ) -> None:
        self._args = (minter, subject, scopes, audience, kind)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        minter, subject, scopes, audience, kind = self._args
        request.headers.update(minter.headers(subject, scopes=scopes, audience=audience, kind=kind))
        yield request
