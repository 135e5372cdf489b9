"""Invariants of the headers the gateway sends upstream."""

from __future__ import annotations

from gateway_support import config
from hypothesis import given
from hypothesis import strategies as st

from tracseq_kit.asgi import valid_request_id
from tracseq_kit.gateway import Gateway
from tracseq_kit.gateway._forwarding import upstream_headers
from tracseq_kit.gateway._headers import HOP_BY_HOP
from tracseq_kit.gateway._request import Request
from tracseq_kit.identity import AssertionVerifier, Identity, generate_keypair

PRIVATE, PUBLIC = generate_keypair()
GW = Gateway(
    config(
        {"t": ["127.0.0.1:1"]},
        [{"prefix": "/", "upstream": "t"}],
        identity={"signing_key": PRIVATE, "key_id": "gw-test"},
    ),
)
VERIFIER = AssertionVerifier({"gw-test": PUBLIC}, audience="t")
SNAP = GW._snap
ROUTE = SNAP.table.routes[0]

names = st.sampled_from(
    [
        b"accept",
        b"content-type",
        b"connection",
        b"keep-alive",
        b"te",
        b"upgrade",
        b"proxy-authorization",
        b"x-forwarded-for",
        b"forwarded",
        b"x-request-id",
        b"traceparent",
        b"x-tracseq-identity",
        b"x-tracseq-identity-subject",
        b"x-tracseq-identity-scopes",
        b"x-api-key",
        b"x-custom",
        b"host",
        b"transfer-encoding",
    ]
)
values = st.binary(min_size=1, max_size=20)
# headers the gateway itself sets (so they may appear although a client named them)
GATEWAY_SET = {
    b"x-request-id",
    b"traceparent",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"forwarded",
}


async def _never(*args: object) -> dict[str, object]:
    raise AssertionError("no I/O here")


@given(
    headers=st.lists(st.tuples(names, values), max_size=12),
    identity=st.one_of(
        st.none(), st.builds(Identity, subject=st.just("alice"), method=st.just("jwt"))
    ),
)
def test_upstream_headers_never_leak_hop_by_hop_or_spoofed_identity(
    headers: list[tuple[bytes, bytes]], identity: Identity | None
) -> None:
    scope = {"headers": headers, "client": ("10.1.2.3", 1), "scheme": "http", "method": "GET"}
    req = Request(scope, _never, _never, SNAP, ROUTE, dict(headers), b"rid-1")
    req.identity = identity
    out, traceparent = upstream_headers(req)
    out.append((b"traceparent", traceparent))
    sent = [n for n, _ in out]
    connection_named = set()
    for n, v in headers:
        if n == b"connection":
            connection_named |= {t.strip().lower() for t in v.split(b",") if t.strip()}
    assert not (set(sent) & HOP_BY_HOP)
    assert not (set(sent) & (connection_named - GATEWAY_SET))
    assert b"x-api-key" not in sent
    for name in (b"x-request-id", b"traceparent", b"x-forwarded-for", b"forwarded"):
        assert sent.count(name) == 1
    assert not [n for n in sent if n.startswith(b"x-tracseq-identity-")]
    assertions = [v for n, v in out if n == b"x-tracseq-identity"]
    if identity is None:
        assert assertions == []
    else:
        assert len(assertions) == 1
        verified = VERIFIER.verify(assertions[0])
        assert verified.subject == "alice"
        assert verified.method == "jwt"
    xff = dict(out)[b"x-forwarded-for"]
    assert xff.endswith(b"10.1.2.3")


@given(st.binary(max_size=200))
def test_only_safe_request_ids_are_propagated(value: bytes) -> None:
    if valid_request_id(value):
        assert 1 <= len(value) <= 128
        assert all(
            c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
            for c in value
        )
