"""The kit's HTTP/1.1 client against h11, on generated, adversarial response streams.

For every generated exchange the client must yield exactly what h11 yields (status,
fields, body, trailers), or reject where h11 rejects. It may also reject the few
constructs it is documented to be stricter about (``STRICTER_THAN_H11``), which the
generator marks. A connection may only serve another exchange when h11 would keep it
and nothing arrived after the response.

Bounded in CI; ``TRACSEQ_HYPOTHESIS_PROFILE=long`` explores far more examples.
"""

from __future__ import annotations

from dataclasses import dataclass

from h11_reference import h11_exchange, kit_exchange
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~",
    min_size=1,
    max_size=12,
)
_VALUE_CHARS = st.sampled_from(
    [b"a", b"Z", b"0", b" ", b"\t", b",", b";", b"=", b'"', b"\x80", b"\xff", b"~", b"/"]
)
# Controls in a value: h11 takes any but NUL and whitespace, the kit (llhttp) none.
_CONTROLS = st.sampled_from([b"\x00", b"\x01", b"\x7f", b"\r", b"\n", b"\x0b", b"\x1f"])
_FRAMING_NAMES = ("content-length", "transfer-encoding", "connection")


@dataclass
class Exchange:
    method: bytes
    packets: list[bytes]
    eof: bool
    stricter: bool
    """The stream uses a construct the kit rejects on purpose (h11 may accept it)."""

    @property
    def data(self) -> bytes:
        return b"".join(self.packets)


@st.composite
def _value(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A field value, and whether it holds a control character."""
    parts = draw(st.lists(_VALUE_CHARS, max_size=8))
    if draw(st.integers(0, 20)) == 0:
        parts.insert(draw(st.integers(0, len(parts))), draw(_CONTROLS))
        return b"".join(parts), True
    return b"".join(parts), False


@st.composite
def _chunked_body(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A chunked body, and whether it uses a construct the kit rejects on purpose."""
    out = bytearray()
    bare_lf = spaced = False
    for data in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=4)):
        size = b"%x" % len(data)
        style = draw(st.integers(0, 12))
        if style == 0:
            size = size.upper()
        elif style == 1:
            size = b"00" + size
        elif style == 2:
            size += b";ext=1"
        elif style == 3:
            size += b';name="quoted"'
        elif style == 4:
            size = b"zz"  # not hex
        elif style == 5:
            size = b"f" * 20  # overflows
        elif style == 6:
            size += b" "  # whitespace after the size
            spaced = True
        elif style == 7:
            size += b"; name=x"  # whitespace inside the extension
            spaced = True
        out += size + b"\r\n" + data
        lf = draw(st.integers(0, 15)) == 0
        bare_lf |= lf
        out += b"\n" if lf else b"\r\n"
    last = b"0" if draw(st.integers(0, 8)) else draw(st.sampled_from([b"000", b"0;x=y"]))
    out += last + b"\r\n"
    controls = False
    for _ in range(draw(st.integers(0, 2))):
        name, (value, control) = draw(_TOKEN).encode(), draw(_value())
        controls |= control
        out += name + b": " + value + b"\r\n"
    ending = draw(st.sampled_from([b"\r\n"] * 10 + [b"", b"\n"]))
    return bytes(out) + ending, controls or bare_lf or spaced or ending == b"\n"


@st.composite
def exchanges(draw: st.DrawFn) -> Exchange:
    stricter = False
    method = draw(st.sampled_from([b"GET"] * 4 + [b"HEAD"]))
    eol = b"\r\n"
    if draw(st.integers(0, 25)) == 0:
        eol, stricter = b"\n", True
    version = draw(
        st.sampled_from(
            [b"HTTP/1.1"] * 8 + [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2", b"HTTP/11", b"http/1.1"]
        )
    )
    if version in (b"HTTP/2.0", b"HTTP/1.2"):
        stricter = True
    head = b""
    for _ in range(draw(st.integers(0, 1) if draw(st.booleans()) else st.just(0))):
        head += b"HTTP/1.1 " + draw(st.sampled_from([b"100 Continue", b"103 Early Hints"]))
        head += eol + eol
    status = draw(
        st.sampled_from(
            [
                b"200",
                b"201",
                b"204",
                b"304",
                b"404",
                b"500",
                b"999",
                b"099",
                b"20",
                b"2000",
                b"101",
                b"abc",
            ]
        )
    )
    reason = draw(
        st.sampled_from(
            [
                b" OK",
                b" ",
                b"",
                b" Fine\tthanks",
                b" \x80\xff",
                b" bad\x01",
                b" bad\x7f",
                b" bad\x00",
                b" a\x0bb",
            ]
        )
    )
    head += version + b" " + status + reason + eol
    fields: list[tuple[bytes, bytes]] = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(_TOKEN).encode()
        if name.lower().decode() in _FRAMING_NAMES:
            continue
        value, control = draw(_value())
        stricter |= control
        fields.append((name, value))
    framing = draw(st.sampled_from(["length", "length", "chunked", "chunked", "close", "none"]))
    body = draw(st.binary(max_size=40))
    if framing == "length":
        declared = len(body)
        shape = draw(st.integers(0, 14))
        value = b"%d" % declared
        if shape == 0:
            value = b"%d" % (declared + 3)  # promises more than it sends
        elif shape == 1:
            value, stricter = value + b", " + value, True
        elif shape == 2:
            fields.append((b"Content-Length", value))
            stricter = True
        elif shape == 3:
            value = b"-1"
        elif shape == 4:
            value = b"0" + value
        elif shape == 5:
            value = b"9" * 25
        elif shape == 6:
            value = b" " + value + b" "
        fields.append((b"Content-Length", value))
    elif framing == "chunked":
        body, control = draw(_chunked_body())
        stricter |= control
        te = draw(
            st.sampled_from(
                [b"chunked"] * 6
                + [b"Chunked", b"gzip, chunked", b"chunked, gzip", b"identity", b" chunked"]
            )
        )
        fields.append((b"Transfer-Encoding", te))
        if draw(st.integers(0, 10)) == 0:
            fields.append((b"Transfer-Encoding", b"chunked"))
        if draw(st.integers(0, 10)) == 0:
            fields.append((b"Content-Length", b"%d" % len(body)))
            stricter = True
    if draw(st.integers(0, 4)) == 0:
        fields.append(
            (
                b"Connection",
                draw(
                    st.sampled_from(
                        [b"close", b"keep-alive", b"Close", b"upgrade", b"x-foo, close"]
                    )
                ),
            )
        )
    order = draw(st.permutations(range(len(fields))))
    for i in order:
        name, value = fields[i]
        sep = draw(st.sampled_from([b": ", b":", b":  ", b": "] * 4 + [b" : ", b":\t"]))
        line = name + sep + value
        if draw(st.integers(0, 40)) == 0:
            line += eol + b" folded"  # obs-fold
            stricter = True
        head += line + eol
    head += eol
    data = head + body
    extra = draw(
        st.sampled_from(
            [b""] * 8
            + [
                b"\r\n",
                b"\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad",
                b"junk",
                b"HTTP/1.1 204 No Content\r\n\r\n",
            ]
        )
    )
    data += extra
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6, unique=True)))
    packets = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    packets = [p for p in packets if p]
    eof = draw(st.booleans()) if framing != "close" else draw(st.integers(0, 5)) > 0
    return Exchange(method, packets, eof, stricter)


def _normal(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    # h11 hands Transfer-Encoding's value over lower-cased (a representation choice)
    return [(n, v.lower() if n == b"transfer-encoding" else v) for n, v in fields]


@settings(
    max_examples=max(1500, settings.default.max_examples),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(exchanges())
def test_client_yields_what_h11_yields_or_rejects(ex: Exchange) -> None:
    ref = h11_exchange(ex.method, ex.packets, eof=ex.eof)
    kit = kit_exchange(ex.method, ex.packets, eof=ex.eof)
    if not ref.ok:
        assert not kit.ok, f"h11 rejected ({ref.error}), the kit accepted {ex.data!r}"
        return
    if not kit.ok:
        assert ex.stricter, f"the kit rejected ({kit.error}) what h11 accepts: {ex.data!r}"
        return
    assert (kit.status, _normal(kit.headers), kit.body, kit.trailers) == (
        ref.status,
        ref.headers,
        ref.body,
        ref.trailers,
    ), ex.data
    assert kit.leftover == ref.leftover, ex.data


@settings(
    max_examples=max(1500, settings.default.max_examples),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(exchanges())
def test_connection_is_pooled_only_when_h11_would_keep_it_and_nothing_is_left(
    ex: Exchange,
) -> None:
    kit = kit_exchange(ex.method, ex.packets, eof=False)
    if not kit.reusable:
        return
    ref = h11_exchange(ex.method, ex.packets, eof=False)
    assert ref.ok and ref.reusable and not ref.leftover, ex.data


# Streams where a split in the wrong place would show: every single cut point and
# byte-by-byte delivery must give the same outcome as h11's.
_CORPUS = [
    (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n"),
    (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok\r\n"),
    (b"GET", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"),
    (b"GET", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No\r\n\r\n"),
    (
        b"GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4\r\n\r\n\r\n\r\n3;a=b\r\nxyz\r\n0\r\nSet-Cookie: s=1\r\nX-T: 2\r\n\r\n",
    ),
    (
        b"GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\r\n",
    ),
    (b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\nZZ\r\n"),
    (b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
    (b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"),
    (b"GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nHTTP/1.1"),
    (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nX: y\r\n\r\n"),
    (b"GET", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"),
    (b"GET", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"),
]


def _all_splits(data: bytes) -> list[list[bytes]]:
    splits = [[data], [data[i : i + 1] for i in range(len(data))]]
    splits += [[data[:i], data[i:]] for i in range(1, len(data))]
    return splits


def test_every_split_point_gives_h11s_outcome() -> None:
    for method, data in _CORPUS:
        for eof in (False, True):
            for packets in _all_splits(data):
                ref = h11_exchange(method, packets, eof=eof)
                kit = kit_exchange(method, packets, eof=eof)
                where = (method, [len(p) for p in packets][:4], eof, data)
                assert kit.ok == ref.ok, where
                if ref.ok:
                    assert (kit.status, _normal(kit.headers), kit.body, kit.trailers) == (
                        ref.status,
                        ref.headers,
                        ref.body,
                        ref.trailers,
                    ), where
                    assert kit.leftover == ref.leftover, where
                    if not eof:
                        assert kit.reusable == (ref.reusable and not ref.leftover), where
