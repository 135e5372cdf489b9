"""Header rules of a proxy: hop-by-hop removal, forwarding headers, request ids."""

from __future__ import annotations

import os
import random
import re

__all__ = ["HOP_BY_HOP", "new_request_id", "new_traceparent", "valid_request_id"]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"expect",
    }
)

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_TRACEPARENT = re.compile(rb"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def valid_request_id(value: bytes) -> bool:
    """Whether a client-sent X-Request-ID is safe to propagate (else a new one is made)."""
    return _REQUEST_ID.fullmatch(value) is not None  # fullmatch: "$" allows a final "\n"


def valid_traceparent(value: bytes) -> bool:
    """Whether a traceparent header has the W3C shape."""
    return _TRACEPARENT.fullmatch(value) is not None


# Ids need to be unique, not secret: the Mersenne Twister (as OpenTelemetry's own id
# generator uses) is several times cheaper per request than os.urandom.
_rng = random.Random(random.SystemRandom().getrandbits(64))


def _reseed() -> None:  # forked workers must not repeat their parent's ids
    _rng.seed(random.SystemRandom().getrandbits(64))


os.register_at_fork(after_in_child=_reseed)


def new_request_id() -> bytes:
    """A fresh 32-hex-digit request id."""
    return b"%032x" % _rng.getrandbits(128)


def new_traceparent() -> bytes:
    """A new W3C traceparent starting a sampled trace."""
    return b"00-%032x-%016x-01" % (_rng.getrandbits(128) or 1, _rng.getrandbits(64) or 1)


def connection_named(value: bytes) -> set[bytes]:
    """Header names listed in a Connection header (they are hop-by-hop too)."""
    return {t.strip().lower() for t in value.split(b",") if t.strip()}
