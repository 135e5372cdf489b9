"""Run one exchange through h11 (the reference) and through the kit's client protocol.

Both sides get the same request method and the same response bytes, split into the same
packets, with or without the server closing the connection at the end. Each returns an
:class:`Outcome`: what a user of the client sees (status, fields, body, trailers) or a
rejection, and whether the connection could serve another exchange.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h11

from tracseq_kit._http1 import DEFAULT_MAX_HEAD_BYTES, _Conn


@dataclass
class Outcome:
    ok: bool
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    reusable: bool = False
    leftover: bool = False
    """Bytes arrived after the end of the response (h11: its trailing data)."""
    error: str = ""


def h11_exchange(method: bytes, packets: list[bytes], *, eof: bool) -> Outcome:
    """What h11 makes of the response to ``method`` arriving as ``packets``."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=DEFAULT_MAX_HEAD_BYTES)
    conn.send(h11.Request(method=method, target="/", headers=[("host", "upstream")]))
    conn.send(h11.EndOfMessage())
    out = Outcome(ok=False)
    body = bytearray()
    pending = list(packets)
    closed = False
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                if pending:
                    conn.receive_data(pending.pop(0))
                    continue
                if eof and not closed:
                    closed = True
                    conn.receive_data(b"")
                    continue
                out.error = "incomplete"
                return out
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                out.status = event.status_code
                out.headers = [(n, v) for n, v in event.headers.raw_items()]
                out.headers = [(n.lower(), v) for n, v in out.headers]
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                out.trailers = [(n.lower(), v) for n, v in event.headers.raw_items()]
                break
            elif isinstance(event, h11.ConnectionClosed):
                out.error = "closed"
                return out
    except h11.RemoteProtocolError as exc:
        out.error = str(exc)
        return out
    out.ok = True
    out.body = bytes(body)
    # the rest of the packets would only arrive after this response ended
    rest = conn.trailing_data[0] + b"".join(pending)
    out.leftover = bool(rest)
    out.reusable = not closed and conn.our_state is h11.DONE and conn.their_state is h11.DONE
    return out


class _Transport:
    """Just enough of an asyncio transport for the protocol object."""

    def __init__(self) -> None:
        self.closing = False
        self.paused = False

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def write(self, data: bytes) -> None:
        pass


def kit_exchange(
    method: bytes, packets: list[bytes], *, eof: bool, max_head: int = DEFAULT_MAX_HEAD_BYTES
) -> Outcome:
    """What the kit's client protocol makes of the same exchange."""
    conn = _Conn(("upstream", 80), max_head)
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    conn.start(head_only=method == b"HEAD")
    for packet in packets:
        if transport.closing:
            break  # the client closed the connection: later bytes never reach it
        conn.data_received(packet)
    if eof and not transport.closing:
        conn.connection_lost(None)
    out = Outcome(ok=False)
    if conn._error is not None or conn._status == 0 or conn._phase != 3:
        out.error = repr(conn._error) if conn._error is not None else "incomplete"
        return out
    out.ok = True
    out.status = conn._status
    out.headers = list(conn._headers)
    out.body = b"".join(conn._chunks)
    out.trailers = list(conn._trailers)
    out.leftover = conn._leftover
    out.reusable = conn.reusable and not transport.closing
    return out
