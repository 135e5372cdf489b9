"""What the request path's steps pass between them, and how they stop it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from tracseq_kit._resend import Failure
from tracseq_kit.asgi import Receive, Scope, Send
from tracseq_kit.gateway._asgi import BodyTooLarge, ClientTimeout
from tracseq_kit.identity import Identity

if TYPE_CHECKING:
    from tracseq_kit.gateway._app import _Snapshot
    from tracseq_kit.gateway._routing import Route

__all__ = [
    "CHALLENGE",
    "CHUNKED",
    "INVALID_TOKEN",
    "NO_BODY",
    "Body",
    "Cut",
    "Failed",
    "Refusal",
    "Request",
    "client_refusal",
    "repeated",
]


class Refusal(Exception):
    """A step's decision to answer with a problem instead of proxying."""

    def __init__(
        self, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


class Failed(Exception):
    """An attempt failed before anything reached the client; maybe re-send it."""

    def __init__(self, failure: Failure, status: int, detail: str, *, resend: bool) -> None:
        super().__init__(detail)
        self.failure = failure
        self.status = status
        self.detail = detail
        self.resend = resend


class Cut(Exception):
    """The response head was sent, its body could not be completed."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class Request:
    """What the steps know about one request."""

    __slots__ = (
        "extra",
        "headers",
        "identity",
        "method",
        "n_headers",
        "receive",
        "rid",
        "route",
        "scope",
        "send",
        "snap",
        "traced",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        snap: _Snapshot,
        route: Route,
        headers: dict[bytes, bytes],
        rid: bytes,
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.snap = snap
        self.route = route
        self.headers = headers
        self.rid = rid
        self.method: str = scope["method"]
        self.n_headers = len(scope["headers"])
        self.identity: Identity | None = None
        self.extra: list[tuple[bytes, bytes]] = [(b"x-request-id", rid)]
        """Headers added to the response, whoever answers (request id, rate limits)."""
        self.traced = False

    @property
    def keyed(self) -> bool:
        """Whether the request carries an ``Idempotency-Key``."""
        return b"idempotency-key" in self.headers


class Body:
    """The request body as the attempts need it."""

    __slots__ = ("chunked", "data", "framing", "stream")

    def __init__(
        self,
        data: bytes | None = None,
        stream: AsyncIterator[bytes] | None = None,
        framing: tuple[tuple[bytes, bytes], ...] = (),
        chunked: bool = False,
    ) -> None:
        self.data = data
        self.stream = stream
        self.framing = framing
        self.chunked = chunked

    @property
    def replayable(self) -> bool:
        return self.stream is None


NO_BODY = Body()
CHALLENGE = ((b"www-authenticate", b'Bearer realm="tracseq"'),)
"""No credentials: what to send (RFC 6750)."""
INVALID_TOKEN = ((b"www-authenticate", b'Bearer realm="tracseq", error="invalid_token"'),)
"""Credentials that do not check out."""
CHUNKED = ((b"transfer-encoding", b"chunked"),)


def client_refusal(exc: BaseException, limit: int) -> Refusal:
    """The problem answered when the client's body failed: too large, late or broken."""
    if isinstance(exc, BodyTooLarge):
        return Refusal(413, f"request body exceeds {limit} bytes")
    if isinstance(exc, ClientTimeout):
        return Refusal(408, "the request body did not arrive in time (client_timeout)")
    return Refusal(400, "the request body is incomplete or its framing is malformed")


def repeated(raw: list[tuple[bytes, bytes]], singletons: frozenset[bytes]) -> bytes | None:
    """The first of ``singletons`` that appears more than once in ``raw``, if any."""
    seen: set[bytes] = set()
    for name, _ in raw:
        if name in singletons:
            if name in seen:
                return name
            seen.add(name)
    return None
