"""RFC 9457 problem details (``application/problem+json``) for pure ASGI code.

Used by every middleware and endpoint that answers an error, so all errors share one
shape: ``type``, ``title``, ``status``, ``detail``, ``instance`` and extension members
such as ``request_id``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from http import HTTPStatus
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def problem_body(
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str = "about:blank",
    instance: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> bytes:
    """Return the encoded problem document for ``status``.

    ``title`` defaults to the HTTP reason phrase. Extension members may not override
    the standard members.
    """
    doc: dict[str, Any] = dict(extensions or {})
    doc.update(
        type=type_,
        title=title or _reason(status),
        status=status,
    )
    if detail is not None:
        doc["detail"] = detail
    if instance is not None:
        doc["instance"] = instance
    return json.dumps(doc, separators=(",", ":"), default=str).encode()


async def send_problem(
    send: Send,
    status: int,
    *,
    title: str | None = None,
    detail: str | None = None,
    type_: str = "about:blank",
    instance: str | None = None,
    extensions: Mapping[str, Any] | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Send a complete problem+json response through an ASGI ``send`` callable."""
    body = problem_body(
        status, title=title, detail=detail, type_=type_, instance=instance, extensions=extensions
    )
    raw_headers = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
