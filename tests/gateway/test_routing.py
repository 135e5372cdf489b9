from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tracseq_kit.gateway import RouteConfig, RoutingTable, UpstreamPool

POOLS = {"t": UpstreamPool("t", ["h:1"]), "e": UpstreamPool("e", ["h:2"])}


def _table(*routes: dict[str, object]) -> RoutingTable:
    return RoutingTable.build([RouteConfig.model_validate(r) for r in routes], POOLS)


def test_longest_prefix_wins_regardless_of_order() -> None:
    table = _table(
        {"prefix": "/api", "upstream": "e"}, {"prefix": "/api/templates", "upstream": "t"}
    )
    route = table.match("GET", "/api/templates/1")
    assert route is not None and route.pool.name == "t"
    route = table.match("GET", "/api/other")
    assert route is not None and route.pool.name == "e"


def test_prefix_matches_on_segment_boundaries() -> None:
    table = _table({"prefix": "/api/templates", "upstream": "t"})
    assert table.match("GET", "/api/templates") is not None
    assert table.match("GET", "/api/templates/") is not None
    assert table.match("GET", "/api/templatesx") is None
    assert table.match("GET", "/api") is None


def test_method_host_and_header_conditions() -> None:
    table = _table(
        {
            "prefix": "/x",
            "upstream": "t",
            "methods": ["get"],
            "host": "lims.example",
            "headers": {"X-Tenant": "lab1"},
        },
        {"prefix": "/x", "upstream": "e"},
    )
    ok = table.match("GET", "/x", b"lims.example:8000", {b"x-tenant": b"lab1"})
    assert ok is not None and ok.pool.name == "t"
    for method, host, headers in [
        ("POST", b"lims.example", {b"x-tenant": b"lab1"}),
        ("GET", b"other", {b"x-tenant": b"lab1"}),
        ("GET", b"lims.example", {b"x-tenant": b"lab2"}),
    ]:
        other = table.match(method, "/x", host, headers)
        assert other is not None and other.pool.name == "e"


def test_strip_and_rewrite() -> None:
    strip = _table({"prefix": "/api/templates", "upstream": "t", "strip_prefix": True}).routes[0]
    assert strip.target("/api/templates/42") == "/42"
    assert strip.target("/api/templates") == "/"
    rewrite = _table({"prefix": "/api/templates", "upstream": "t", "rewrite": "/v1"}).routes[0]
    assert rewrite.target("/api/templates/42") == "/v1/42"
    keep = _table({"prefix": "/api", "upstream": "t"}).routes[0]
    assert keep.target("/api/x") == "/api/x"


segment = st.text(alphabet="abcxyz019-_", min_size=1, max_size=8)


@given(
    prefix=st.lists(segment, min_size=1, max_size=3),
    rest=st.lists(segment, max_size=3),
    rewrite=st.sampled_from([None, "/", "/v1", "/v1/"]),
)
def test_rewrite_keeps_the_rest_of_the_path(
    prefix: list[str], rest: list[str], rewrite: str | None
) -> None:
    p = "/" + "/".join(prefix)
    path = p + "".join("/" + r for r in rest)
    route = _table({"prefix": p, "upstream": "t", "strip_prefix": True, "rewrite": rewrite}).routes[
        0
    ]
    out = route.target(path)
    base = (rewrite or "/").rstrip("/")
    assert out.startswith("/")
    assert "//" not in out
    assert out == (base + "".join("/" + r for r in rest)) or (not rest and out == (rewrite or "/"))
