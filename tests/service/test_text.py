"""RejectNulMiddleware: a NUL in the query, path or a JSON body is a 422, and only then."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Route

from tracseq_kit.asgi import ProblemDetailsMiddleware


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "rejected"),
    [
        (b'{"a": "x\\u0000y"}', True),
        (b'{"a": "x\\U0000y"}', True),
        (b'{"a": "x\\\\u0000y"}', False),  # an escaped backslash, then the text u0000
        (b'{"a": "x\\\\\\u0000y"}', True),
        (b'{"a": "fine"}', False),
    ],
)
async def test_nul_in_a_json_body_is_a_422(asgi_call: Any, body: bytes, rejected: bool) -> None:
    from tracseq_kit.service import RejectNulMiddleware

    app = ProblemDetailsMiddleware(RejectNulMiddleware(_starlette_json_echo()))
    # one byte at a time too: an escape cut between two chunks is still seen
    for chunks in ([body], [body[i : i + 1] for i in range(len(body))]):
        result = await asgi_call(
            app, method="POST", headers=[("content-type", "application/json")], chunks=chunks
        )
        assert (result.status == 422) is rejected, (body, result.status, result.body)


@pytest.mark.anyio
async def test_nul_in_the_query_or_path_is_a_422(asgi_call: Any) -> None:
    from tracseq_kit.service import RejectNulMiddleware

    app = RejectNulMiddleware(_starlette_json_echo())
    result = await asgi_call(app, path="/x%00y")
    assert result.status == 422 and result.headers["content-type"] == "application/problem+json"


def _starlette_json_echo() -> Any:
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from tracseq_kit.service import install_exception_handlers

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"got": len(await request.body())})

    app = Starlette(routes=[Route("/{path:path}", echo, methods=["GET", "POST"])])
    install_exception_handlers(app)
    return app


_text = st.text(alphabet=st.sampled_from(["a", "\\", "u", "0", "\x00", '"', "é", "\n"]))
_documents = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), _text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)),
    max_leaves=12,
)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    return False


@pytest.mark.anyio
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=_documents, cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=5))
async def test_rejected_exactly_when_the_json_holds_a_nul(
    asgi_call: Any, document: Any, cuts: list[int]
) -> None:
    """json (the reference) decides what the document holds; however the body is cut
    into chunks, the middleware agrees."""
    from tracseq_kit.service import RejectNulMiddleware

    body = json.dumps(document, ensure_ascii=len(cuts) % 2 == 0).encode()
    edges = sorted({c for c in cuts if c < len(body)})
    chunks = [body[a:b] for a, b in zip([0, *edges], [*edges, len(body)], strict=True)]
    app = ProblemDetailsMiddleware(RejectNulMiddleware(_starlette_json_echo()))
    result = await asgi_call(
        app, method="POST", headers=[("content-type", "application/json")], chunks=chunks
    )
    assert (result.status == 422) is _holds_nul(document), (body, result.status)
