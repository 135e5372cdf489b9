from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracseq_kit.asgi import RequestIdMiddleware
from tracseq_kit.service import BodySizeLimitMiddleware

LIMIT = 100


@pytest.mark.anyio
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(chunks=st.lists(st.binary(max_size=60), max_size=6), declare=st.booleans())
async def test_bodies_within_the_limit_pass_intact_and_larger_ones_get_413(
    asgi_call: Any, echo_app: Any, chunks: list[bytes], declare: bool
) -> None:
    app = RequestIdMiddleware(BodySizeLimitMiddleware(echo_app, max_bytes=LIMIT))
    body = b"".join(chunks)
    headers = (
        [("content-length", str(len(body)))] if declare else [("transfer-encoding", "chunked")]
    )
    result = await asgi_call(app, method="POST", headers=headers, chunks=chunks)
    if len(body) <= LIMIT:
        assert result.status == 200
        assert result.body == body
    else:
        assert result.status == 413
        assert result.headers["content-type"] == "application/problem+json"
        problem = result.json()
        assert problem["max_bytes"] == LIMIT
        assert problem["request_id"] == result.headers["x-request-id"]


@pytest.mark.anyio
async def test_declared_length_is_refused_before_the_app_runs(asgi_call: Any) -> None:
    ran = False

    async def app(scope: object, receive: object, send: object) -> None:
        nonlocal ran
        ran = True

    result = await asgi_call(
        BodySizeLimitMiddleware(app, max_bytes=10),
        method="POST",
        headers=[("content-length", "11")],
    )
    assert result.status == 413 and not ran


def test_negative_limit_is_refused(echo_app: Any) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        BodySizeLimitMiddleware(echo_app, max_bytes=-1)
