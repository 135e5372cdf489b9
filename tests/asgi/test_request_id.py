from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracseq_kit.asgi import REQUEST_ID_PATTERN, RequestIdMiddleware, valid_request_id
from tracseq_kit.telemetry import current_request_id

WELL_FORMED = re.compile(r"[A-Za-z0-9._:-]{1,128}")


async def report_id(scope: Any, receive: Any, send: Any) -> None:
    seen = f"{current_request_id()}|{scope['state']['request_id']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": seen})


app = RequestIdMiddleware(report_id)

header_values = st.one_of(
    st.from_regex(WELL_FORMED, fullmatch=True),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=200),
)


@pytest.mark.anyio
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=header_values)
async def test_well_formed_ids_are_kept_and_others_replaced(asgi_call: Any, value: str) -> None:
    result = await asgi_call(app, headers=[("X-Request-ID", value)])
    echoed = result.headers["x-request-id"]
    assert WELL_FORMED.fullmatch(echoed)
    if WELL_FORMED.fullmatch(value):
        assert echoed == value
    else:
        assert echoed != value
    assert result.text == f"{echoed}|{echoed}"


@pytest.mark.anyio
async def test_missing_id_is_generated_fresh_each_time(asgi_call: Any) -> None:
    first = await asgi_call(app)
    second = await asgi_call(app)
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


@pytest.mark.anyio
async def test_id_is_unset_after_the_request(asgi_call: Any) -> None:
    await asgi_call(app, headers=[("X-Request-ID", "abc")])
    assert current_request_id() is None


@pytest.mark.anyio
async def test_other_header_name(asgi_call: Any) -> None:
    custom = RequestIdMiddleware(report_id, header="X-Correlation-ID")
    result = await asgi_call(custom, headers=[("X-Correlation-ID", "corr-1")])
    assert result.headers["x-correlation-id"] == "corr-1"


def test_services_and_the_gateway_accept_the_same_ids() -> None:
    # one rule: an id the gateway forwards is the id every service logs
    from tracseq_kit.gateway import _headers

    assert _headers.valid_request_id is valid_request_id
    assert WELL_FORMED.pattern == REQUEST_ID_PATTERN
    for value in (b"req:42", b"a.b-c_d", b"x" * 128):
        assert valid_request_id(value)
    for value in (b"", b"x" * 129, b"a b", b"a\nb", b"<script>"):
        assert not valid_request_id(value)
