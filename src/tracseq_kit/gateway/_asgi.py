"""ASGI plumbing of the proxy: body reading, targets, header sets, small responses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

from tracseq_kit.gateway._headers import HOP_BY_HOP
from tracseq_kit.gateway._routing import Route

__all__ = [
    "REPLACED",
    "RESPONSE_DROP",
    "AbortResponse",
    "BodyTooLarge",
    "ClientGone",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "read_body",
    "send_bytes",
    "until_disconnect",
    "upstream_target",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(Exception):
    """The request body passed ``max_body_bytes`` while streaming."""


class ClientGone(Exception):
    """The client disconnected before its request body was read."""


class AbortResponse(Exception):
    """The response head was sent; the body could not be completed."""


# Like nginx, the upstream's Date and Server are not passed on (the server adds Date);
# the upstream's request id is replaced by the gateway's.
RESPONSE_DROP = HOP_BY_HOP | {b"date", b"server", b"x-request-id"}

REPLACED = frozenset(
    {
        b"host",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"forwarded",
        b"x-request-id",
        b"traceparent",
        b"content-length",
    }
)


def upstream_target(scope: Scope, route: Route) -> bytes:
    raw: bytes | None = scope.get("raw_path")
    prefix = route.prefix.encode()
    if raw is not None and raw.startswith(prefix) and route.replacement is not None:
        rest = raw[len(prefix) :]
        repl = route.replacement.encode()
        if not rest:
            path = repl or b"/"
        elif repl.endswith(b"/") and rest.startswith(b"/"):
            path = repl + rest[1:]
        elif not repl.endswith(b"/") and not rest.startswith(b"/"):
            path = repl + b"/" + rest
        else:
            path = repl + rest
    elif raw is not None and route.replacement is None:
        path = raw
    else:
        from urllib.parse import quote

        path = quote(route.target(scope["path"])).encode()
    qs: bytes = scope.get("query_string", b"")
    return path + b"?" + qs if qs else path


async def read_body(receive: Receive, limit: int) -> AsyncIterator[bytes]:
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        received += len(chunk)
        if received > limit:
            raise BodyTooLarge
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def send_bytes(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
