"""Identity assertions: what verifies, and every way a forgery or a stale one does not."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracseq_kit import ConfigurationError
from tracseq_kit.identity import (
    ASSERTION_ISSUER,
    AssertionSigner,
    AssertionVerifier,
    Identity,
    InvalidAssertion,
    generate_keypair,
    parse_public_keys,
)

PRIVATE, PUBLIC = generate_keypair()
OTHER_PRIVATE, OTHER_PUBLIC = generate_keypair()
NOW = 1_900_000_000.0


def _signer(private: str = PRIVATE, *, kid: str = "gw-1", at: float = NOW) -> AssertionSigner:
    return AssertionSigner(private, key_id=kid, ttl=30, clock=lambda: at)


def _verifier(*, at: float = NOW, keys: dict[str, str] | None = None) -> AssertionVerifier:
    return AssertionVerifier(
        keys if keys is not None else {"gw-1": PUBLIC}, audience="svc", clock=lambda: at
    )


def _claims(token: bytes) -> dict[str, object]:
    payload = token.split(b".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + b"=" * 4))
    return decoded


text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40
)
scope_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz:._-", min_size=1, max_size=20)
identities = st.builds(
    Identity,
    subject=text,
    method=st.sampled_from(["jwt", "api_key"]),
    scopes=st.lists(scope_names, max_size=6, unique=True).map(tuple),
    issuer=st.one_of(st.none(), text),
    kind=st.one_of(st.none(), st.sampled_from(["user", "client"])),
)


@settings(max_examples=200)
@given(identity=identities)
def test_what_the_gateway_signs_a_service_reads_back_unchanged(identity: Identity) -> None:
    token = _signer().assertion(identity, "svc")
    assert _verifier().verify(token) == identity
    claims = _claims(token)
    assert claims["iss"] == ASSERTION_ISSUER and claims["aud"] == "svc"
    assert claims["exp"] == claims["iat"] + 30  # type: ignore[operator]


@settings(max_examples=200)
@given(identity=identities, flip=st.integers(min_value=0, max_value=10_000))
def test_any_changed_byte_is_refused(identity: Identity, flip: int) -> None:
    token = bytearray(_signer().assertion(identity, "svc"))
    i = flip % len(token)
    replacement = b"A" if token[i : i + 1] != b"A" else b"B"
    token[i : i + 1] = replacement
    try:
        got = _verifier().verify(bytes(token))
    except InvalidAssertion:
        return
    # base64url padding bits can absorb a change in the last character of a part: then
    # the bytes signed are the same, and so is what they say
    assert got == identity


def test_a_key_the_service_does_not_hold_is_refused() -> None:
    alice = Identity(subject="alice", method="jwt", scopes=("admin",))
    forged = _signer(OTHER_PRIVATE).assertion(alice, "svc")  # right kid, wrong key
    with pytest.raises(InvalidAssertion):
        _verifier().verify(forged)
    unknown = _signer(OTHER_PRIVATE, kid="gw-9").assertion(alice, "svc")
    with pytest.raises(InvalidAssertion, match="no known key"):
        _verifier().verify(unknown)


def test_a_removed_key_is_refused_and_the_next_one_accepted() -> None:
    alice = Identity(subject="alice", method="jwt")
    old = _signer(kid="gw-1").assertion(alice, "svc")
    new = _signer(OTHER_PRIVATE, kid="gw-2").assertion(alice, "svc")
    both = _verifier(keys={"gw-1": PUBLIC, "gw-2": OTHER_PUBLIC})
    assert both.verify(old) == both.verify(new) == alice
    after = _verifier(keys={"gw-2": OTHER_PUBLIC})
    assert after.verify(new) == alice
    with pytest.raises(InvalidAssertion):
        after.verify(old)


def test_another_services_assertion_is_refused() -> None:
    token = _signer().assertion(Identity(subject="alice", method="jwt"), "billing")
    with pytest.raises(InvalidAssertion, match="udience"):
        _verifier().verify(token)


def test_an_expired_assertion_is_refused_even_after_it_was_accepted() -> None:
    token = _signer().assertion(Identity(subject="alice", method="jwt"), "svc")
    clock = [NOW]
    verifier = AssertionVerifier({"gw-1": PUBLIC}, audience="svc", clock=lambda: clock[0])
    assert verifier.verify(token).subject == "alice"
    clock[0] = NOW + 30 + 5 + 1  # past expiry and the leeway: a replay is refused
    with pytest.raises(InvalidAssertion):
        verifier.verify(token)
    # a fresh verifier (a restarted service) refuses it too
    with pytest.raises(InvalidAssertion, match="xpired"):
        _verifier(at=NOW + 40).verify(token)


def test_assertions_from_the_future_are_refused() -> None:
    token = _signer(at=NOW + 600).assertion(Identity(subject="alice", method="jwt"), "svc")
    with pytest.raises(InvalidAssertion):
        _verifier().verify(token)


def _token(header: dict[str, object], claims: dict[str, object], key: object, alg: str) -> bytes:
    return jwt.encode(claims, key, algorithm=alg, headers=header).encode()  # type: ignore[arg-type]


def _good_claims() -> dict[str, object]:
    return {
        "iss": ASSERTION_ISSUER,
        "aud": "svc",
        "sub": "alice",
        "scope": "admin",
        "iat": int(NOW),
        "exp": int(NOW) + 30,
    }


def test_algorithm_confusion_is_refused() -> None:
    # the public key used as an HMAC secret: the classic confusion attack (PyJWT will
    # not sign that, so the token is put together by hand)
    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "gw-1"}).encode())
    body = b64(json.dumps(_good_claims()).encode())
    mac = hmac.new(PUBLIC.encode(), head + b"." + body, hashlib.sha256).digest()
    with pytest.raises(InvalidAssertion):
        _verifier().verify(head + b"." + body + b"." + b64(mac))
    # "none": no signature at all
    unsigned = jwt.encode(_good_claims(), None, algorithm="none", headers={"kid": "gw-1"})
    with pytest.raises(InvalidAssertion):
        _verifier().verify(unsigned.encode())
    # another asymmetric algorithm, with a key of its own under the same kid
    from cryptography.hazmat.primitives.asymmetric import ec

    es = jwt.encode(
        _good_claims(), ec.generate_private_key(ec.SECP256R1()), "ES256", headers={"kid": "gw-1"}
    )
    with pytest.raises(InvalidAssertion):
        _verifier().verify(es.encode())


@pytest.mark.parametrize(
    "change",
    [
        {"sub": 7},
        {"sub": ""},
        {"scope": ["admin"]},
        {"amr": 1},
        {"kind": {"x": 1}},
        {"iss": "someone-else"},
        {"exp": None},
        {"iat": None},
        {"exp": "soon"},
        {"iat": True},
        {"exp": int(NOW) + 3600},
    ],
)
def test_claims_of_the_wrong_shape_are_refused(change: dict[str, object]) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(PRIVATE.encode(), password=None)
    claims = {k: v for k, v in {**_good_claims(), **change}.items() if v is not None}
    with pytest.raises(InvalidAssertion):
        _verifier().verify(_token({"kid": "gw-1"}, claims, key, "EdDSA"))


@given(st.binary(max_size=300))
def test_garbage_is_refused_not_crashed_on(garbage: bytes) -> None:
    with pytest.raises(InvalidAssertion):
        _verifier().verify(garbage)


def test_keys_must_be_ed25519() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_private = ec_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    ec_public = (
        ec_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ConfigurationError, match="Ed25519"):
        AssertionSigner(ec_private, key_id="x")
    with pytest.raises(ConfigurationError, match="Ed25519"):
        AssertionVerifier({"x": ec_public}, audience="svc")
    with pytest.raises(ConfigurationError):
        AssertionVerifier({}, audience="svc")
    with pytest.raises(ConfigurationError, match="1 to 300"):
        AssertionSigner(PRIVATE, key_id="x", ttl=3600)


def test_public_key_files_name_each_key() -> None:
    text = f"kid=gw-1\n{PUBLIC}\nkid=gw-2\n{OTHER_PUBLIC}"
    assert parse_public_keys(text) == {"gw-1": PUBLIC, "gw-2": OTHER_PUBLIC}
    assert parse_public_keys(PUBLIC) == {"default": PUBLIC}
    for bad, reason in [
        ("hello", "expected 'kid=<id>'"),
        (f"kid=\n{PUBLIC}", "empty key id"),
        (f"kid=a\n{PUBLIC}kid=a\n{PUBLIC}", "given twice"),
        ("-----BEGIN PUBLIC KEY-----\nabc", "not closed"),
        (f"{PUBLIC}kid=lonely", "has no PEM block"),
    ]:
        with pytest.raises(ConfigurationError, match=reason):
            parse_public_keys(bad)


def test_the_signer_reuses_an_assertion_for_half_its_life() -> None:
    clock = [NOW]
    signer = AssertionSigner(PRIVATE, key_id="gw-1", ttl=30, clock=lambda: clock[0])
    alice = Identity(subject="alice", method="jwt")
    first = signer.assertion(alice, "svc")
    clock[0] += 14
    assert signer.assertion(alice, "svc") == first
    assert signer.assertion(alice, "other") != first
    clock[0] += 2  # past half its life: a fresh one, valid a full ttl from now
    fresh = signer.assertion(alice, "svc")
    assert fresh != first
    assert _claims(fresh)["exp"] == int(clock[0]) + 30
