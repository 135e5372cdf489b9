"""Who a request comes from, and how services can believe it.

A service must not believe identity headers: anybody who reaches its port could send
them. The gateway authenticates the caller (a JWT from the auth service or an API key),
checks the route's scopes, and forwards the caller's :class:`Identity` as a short-lived
assertion in :data:`IDENTITY_HEADER`: a JWT signed with the gateway's Ed25519 key
(:class:`AssertionSigner`), for one service (its audience) and a few seconds. A service
verifies it with the gateway's public keys (:class:`AssertionVerifier`, run per request
by :class:`IdentityMiddleware`, which ``create_service`` installs from the
``identity_*`` settings). A request without a valid assertion has no identity, whatever
headers it carries.

Handlers ask for the identity through the dependencies of :mod:`tracseq_kit.service`
(``CurrentIdentity``, ``require_scopes``). Tests mint assertions with
:class:`tracseq_kit.testing.IdentityMinter`.

Key material: :func:`generate_keypair` makes a PEM pair; services read the public keys
as ``kid=<id>`` lines each followed by a PEM block (:func:`parse_public_keys`), so the
next key can be installed before the gateway signs with it.
"""

from tracseq_kit.identity._assertion import (
    ASSERTION_ISSUER,
    AssertionSigner,
    AssertionVerifier,
    InvalidAssertion,
    generate_keypair,
    parse_public_keys,
    public_pem_of,
)
from tracseq_kit.identity._identity import ADMIN_SCOPE, ANONYMOUS, IDENTITY_HEADER, Identity
from tracseq_kit.identity._middleware import IdentityMiddleware, KeyFile

__all__ = [
    "ADMIN_SCOPE",
    "ANONYMOUS",
    "ASSERTION_ISSUER",
    "IDENTITY_HEADER",
    "AssertionSigner",
    "AssertionVerifier",
    "Identity",
    "IdentityMiddleware",
    "InvalidAssertion",
    "KeyFile",
    "generate_keypair",
    "parse_public_keys",
    "public_pem_of",
]
