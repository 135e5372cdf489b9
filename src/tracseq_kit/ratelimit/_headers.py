"""IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from tracseq_kit.ratelimit._policy import Decision, Policy

__all__ = ["ratelimit_headers"]


def ratelimit_headers(decision: Decision, policies: Sequence[Policy]) -> list[tuple[bytes, bytes]]:
    """``RateLimit-Policy``, ``RateLimit`` and, when rejected, ``Retry-After``.

    ``RateLimit-Policy`` lists every policy as ``"name";q=<quota>;w=<window s>``;
    ``RateLimit`` reports the deciding policy as ``"name";r=<remaining>;t=<reset s>``.
    Seconds are rounded up, so ``Retry-After`` is never earlier than the moment the
    request would be admitted.
    """
    policy_field = ", ".join(
        f'"{p.name}";q={p.capacity};w={max(1, math.ceil(p.period))}' for p in policies
    )
    reset = max(0, math.ceil(decision.reset_after - 1e-9))
    out = [
        (b"ratelimit-policy", policy_field.encode()),
        (b"ratelimit", f'"{decision.policy}";r={decision.remaining};t={reset}'.encode()),
    ]
    if not decision.allowed:
        out.append((b"retry-after", str(max(1, math.ceil(decision.retry_after - 1e-9))).encode()))
    return out
