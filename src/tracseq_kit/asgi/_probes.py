"""The words and answers of health: one vocabulary for services and the gateway.

Probes (``/livez``, ``/readyz``, ``/startupz``) answer an ``application/health+json``
document with ``pass`` or ``fail``; aggregated reports (``/health``) say ``healthy``,
``degraded`` or ``unhealthy``. Both the service chassis and the gateway use these.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

from tracseq_kit.asgi._types import Send

__all__ = ["HEALTH_JSON", "HealthWord", "send_json", "send_probe", "worst"]

HEALTH_JSON: Final = "application/health+json"
"""The media type of draft-inadarei-api-health-check documents."""

HealthWord = Literal["healthy", "degraded", "unhealthy"]
"""The verdict of an aggregated health report, best first."""

_ORDER: Final[dict[str, int]] = {"healthy": 0, "degraded": 1, "unhealthy": 2}
_PASS: Final = b'{"status":"pass"}'
_FAIL: Final = b'{"status":"fail"}'
_NO_STORE: Final = (b"cache-control", b"no-store")


def worst(words: Iterable[HealthWord]) -> HealthWord:
    """The worst of several verdicts (``healthy`` for none)."""
    return max(words, key=_ORDER.__getitem__, default="healthy")


async def send_json(
    send: Send, status: int, body: bytes, media_type: str, *, head: bool = False
) -> None:
    """Send a complete, uncacheable response (no body for ``HEAD``)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", media_type.encode("latin-1")),
                (b"content-length", str(len(body)).encode()),
                _NO_STORE,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})


async def send_probe(send: Send, ok: bool, *, head: bool = False) -> None:
    """Answer a probe: 200 ``{"status":"pass"}`` or 503 ``{"status":"fail"}``."""
    await send_json(send, 200 if ok else 503, _PASS if ok else _FAIL, HEALTH_JSON, head=head)
