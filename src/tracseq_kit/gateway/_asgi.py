"""The client side of the proxy: targets, header sets, reading the client's body."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from tracseq_kit.asgi import Receive, Scope
from tracseq_kit.gateway._headers import HOP_BY_HOP
from tracseq_kit.gateway._routing import Route

__all__ = [
    "REPLACED",
    "RESPONSE_DROP",
    "BodyTooLarge",
    "ClientGone",
    "ClientTimeout",
    "client_body",
    "until_disconnect",
    "upstream_target",
]


class BodyTooLarge(Exception):
    """The request body passed ``max_body_bytes`` while streaming."""


class ClientGone(Exception):
    """The request body ended early: the client went away, or its framing was broken.

    ASGI servers report both the same way (uvicorn answers a framing error itself;
    granian hands the application an ``http.disconnect``), so the gateway answers 400.
    """


class ClientTimeout(Exception):
    """The client took longer than ``client_timeout`` to send the next part of its body."""


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
    """The request target sent upstream: the raw path, rewritten, with the query."""
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


async def until_disconnect(receive: Receive) -> None:
    """Return when the client disconnects."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def client_body(receive: Receive, limit: int, per_read: float) -> AsyncIterator[bytes]:
    """The client's request body, each read bounded by ``per_read`` s (``client_timeout``).

    Raises :class:`BodyTooLarge` past ``limit`` bytes, :class:`ClientTimeout` when a read
    takes longer, :class:`ClientGone` when the body ends before its last part.
    """
    received = 0
    while True:
        try:
            async with asyncio.timeout(per_read):
                message = await receive()
        except TimeoutError:
            raise ClientTimeout from None
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
