"""Header rules of a proxy: hop-by-hop removal, Connection tokens, trace context."""

from __future__ import annotations

import re
from collections.abc import Iterable

from tracseq_kit.asgi._request_id import new_request_id_bytes, new_traceparent, valid_request_id

__all__ = [
    "HOP_BY_HOP",
    "connection_named",
    "new_request_id_bytes",
    "new_traceparent",
    "valid_request_id",
    "valid_traceparent",
]

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

_TRACEPARENT = re.compile(rb"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_PLAIN = frozenset({b"keep-alive", b"close"})


def valid_traceparent(value: bytes) -> bool:
    """Whether a traceparent header has the W3C shape."""
    return _TRACEPARENT.fullmatch(value) is not None


def connection_named(values: Iterable[bytes]) -> frozenset[bytes]:
    """Header names listed in every ``Connection`` field line (hop-by-hop too).

    ``values`` are the values of all the message's ``Connection`` lines: a sender may
    split the list over several lines (RFC 9110 §5.3), and each line counts.
    """
    names: set[bytes] = set()
    for value in values:
        lowered = value.lower()
        if lowered in _PLAIN:  # the usual "keep-alive"/"close": nothing named
            continue
        names.update(t.strip() for t in lowered.split(b","))
    names.discard(b"")
    return frozenset(names)
