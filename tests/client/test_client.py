"""The typed client against httpx's MockTransport: configuration, errors, retries,
idempotency keys, deadlines, breaker, paging, uploads and the SSE tail."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tracseq_kit
from tracseq_kit import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CircuitOpenError,
    ConfigurationError,
    ConflictError,
    DeadlineExceededError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RequestTimeoutError,
    ServerError,
    TooManyRequestsError,
    UnprocessableEntityError,
)
from tracseq_kit.client import AsyncTracSeqClient, TracSeqClient
from tracseq_kit.resilience import CircuitBreaker, Retry, deadline, deterministic_mode

TEMPLATE = {"id": "tpl-1", "name": "RNA", "category": "submission", "status": "draft"}

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, **options: Any) -> TracSeqClient:
    options.setdefault("retry", Retry(attempts=4, initial_delay=0.0, max_delay=0.0))
    return TracSeqClient("http://tracseq.test", transport=httpx.MockTransport(handler), **options)


def problem(status: int, detail: str, **extra: Any) -> httpx.Response:
    body = {"type": "about:blank", "title": "x", "status": status, "detail": detail, **extra}
    return httpx.Response(
        status,
        json=body,
        headers={"content-type": "application/problem+json", "x-request-id": "req-42"},
    )


# -- configuration ------------------------------------------------------------------------


def test_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACSEQ_BASE_URL", "http://gateway.lab:8000/")
    monkeypatch.setenv("TRACSEQ_API_TOKEN", "s3cret")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=TEMPLATE)

    with TracSeqClient(transport=httpx.MockTransport(handler)) as c:
        c.templates.get("tpl-1")
        assert "s3cret" not in repr(c) and "gateway.lab" in repr(c)
    assert str(seen[0].url) == "http://gateway.lab:8000/api/templates/tpl-1"
    assert seen[0].headers["authorization"] == "Bearer s3cret"
    assert seen[0].headers["user-agent"].startswith(f"tracseq-kit/{tracseq_kit.__version__} ")


def test_bad_options_are_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACSEQ_BASE_URL", "gateway.lab:8000")
    with pytest.raises(ConfigurationError, match="TRACSEQ_BASE_URL"):
        TracSeqClient()
    with pytest.raises(ConfigurationError, match="timeout"):
        TracSeqClient("http://x", timeout=0)
    c = TracSeqClient("http://x")
    with pytest.raises(ConfigurationError, match="page_size"):
        c.templates.list(page_size=0)
    with pytest.raises(ConfigurationError, match="non-empty"):
        c.templates.get("")
    with pytest.raises(ConfigurationError, match="deadline"):
        c.with_options(deadline=-1)


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (408, RequestTimeoutError),
        (409, ConflictError),
        (413, PayloadTooLargeError),
        (422, UnprocessableEntityError),
        (429, TooManyRequestsError),
        (500, ServerError),
        (503, ServerError),
        (418, APIStatusError),
    ],
)
def test_statuses_map_to_the_error_tree(status: int, cls: type[APIStatusError]) -> None:
    c = client(lambda r: problem(status, "it went wrong"), retry=None)
    with pytest.raises(cls) as caught:
        c.templates.get("tpl-1")
    err = caught.value
    assert type(err) is cls
    assert err.status == status and err.request_id == "req-42"
    assert err.detail == "it went wrong" and err.problem["status"] == status
    assert "it went wrong" in str(err) and "req-42" in str(err)
    assert err.retriable == (status in (408, 429) or status >= 500)


def test_a_422_carries_its_field_errors() -> None:
    errors = [{"field": "body.name", "message": "too short", "type": "string_too_short"}]
    c = client(lambda r: problem(422, "The request is invalid: body.name.", errors=errors))
    with pytest.raises(UnprocessableEntityError) as caught:
        c.templates.create({"name": "ok"})
    assert caught.value.errors == errors


def test_a_non_json_error_body_still_gives_a_clear_error() -> None:
    c = client(lambda r: httpx.Response(502, text="<html>bad gateway</html>"), retry=None)
    with pytest.raises(ServerError, match="bad gateway"):
        c.health()


def test_connection_errors_and_timeouts() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(APIConnectionError, match="base URL"):
        client(refuse, retry=None).templates.get("t")
    with pytest.raises(APITimeoutError) as caught:
        client(slow, retry=None).templates.get("t")
    assert isinstance(caught.value, TimeoutError)


def test_request_body_that_is_not_a_template_is_refused_before_sending() -> None:
    c = client(lambda r: pytest.fail("nothing should be sent"))
    with pytest.raises(ConfigurationError):
        c.templates.create("not a template")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"invalid replay request: target_topic: "):
        c.events.replay("not a topic!")
    with pytest.raises(ConfigurationError, match=r"invalid event: "):
        c.events.publish(type="tracseq.x", source="/s", subject=["not", "a", "string"])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"invalid template: name: .*; fields\.0\.type"):
        c.templates.create({"name": "", "fields": [{"name": "a", "type": "colour"}]})


# -- retries and idempotency ----------------------------------------------------------------


def test_retries_reuse_one_idempotency_key_per_logical_write() -> None:
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["idempotency-key"])
        return problem(503, "busy") if len(keys) < 3 else httpx.Response(201, json=TEMPLATE)

    c = client(handler)
    assert c.templates.create({"name": "RNA"}).id == "tpl-1"
    assert len(keys) == 3 and len(set(keys)) == 1
    c.templates.publish("tpl-1")
    assert keys[-1] != keys[0], "a new logical write gets a new key"


@given(failures=st.lists(st.sampled_from([408, 429, 500, 502, 503, 504, 0]), max_size=6))
def test_property_one_key_per_write_and_never_more_than_the_attempts(
    failures: list[int],
) -> None:
    """Invariant: every attempt of one write carries the same key, at most `attempts`
    attempts are made, and the call succeeds iff a success came within them."""
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers["idempotency-key"])
        n = len(sent) - 1
        if n < len(failures):
            if failures[n] == 0:
                raise httpx.ConnectError("refused", request=request)
            return problem(failures[n], "transient")
        return httpx.Response(200, json=TEMPLATE)

    c = client(handler)
    try:
        c.templates.publish("tpl-1")
        succeeded = True
    except (APIStatusError, APIConnectionError):
        succeeded = False
    assert len(set(sent)) == 1
    assert len(sent) == min(len(failures) + 1, 4)
    assert succeeded == (len(failures) < 4)


@pytest.mark.parametrize("name", ["Idempotency-Key", "idempotency-key", "IDEMPOTENCY-KEY"])
def test_a_callers_idempotency_key_wins_and_is_reused_across_retries(name: str) -> None:
    seen: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get_list("idempotency-key"))
        return problem(503, "busy") if len(seen) < 3 else httpx.Response(201, json=TEMPLATE)

    c = client(handler)
    c.request("POST", "/api/templates", json={"name": "RNA"}, headers={name: "mine-1"})
    assert seen == [["mine-1"]] * 3  # one header, the caller's, on every attempt
    seen.clear()
    c.with_options(headers={name: "mine-2"}).templates.create({"name": "RNA"})
    assert seen == [["mine-2"]] * 3


def test_caller_headers_merge_case_insensitively_with_the_clients_own() -> None:
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json=TEMPLATE)

    c = client(handler, headers={"Accept": "application/json; q=1", "X-Lab": "a"})
    c.with_options(headers={"x-lab": "b"}).templates.get("tpl-1")
    assert seen[0].get_list("accept") == ["application/json; q=1"]
    assert seen[0].get_list("x-lab") == ["b"]
    c.request("GET", "/api/templates/tpl-1", headers={"USER-AGENT": "pipeline/2"})
    assert seen[1].get_list("user-agent") == ["pipeline/2"]


def test_client_errors_are_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return problem(409, "archived")

    with pytest.raises(ConflictError):
        client(handler).templates.publish("tpl-1")
    assert len(calls) == 1


def test_retry_after_is_honoured() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(429, headers={"retry-after": "7"}, json={"detail": "slow"})
        return httpx.Response(200, json=TEMPLATE)

    with deterministic_mode() as clock:
        c = client(handler, retry=Retry(attempts=3, initial_delay=0.0))
        c.templates.get("tpl-1")
        assert clock() >= 7.0, "the client waited what the server asked"
    assert len(calls) == 2


def test_a_retry_after_beyond_the_cap_is_not_waited_for() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"retry-after": "3600"}, json={"detail": "down"})

    with deterministic_mode(), pytest.raises(ServerError) as caught:
        client(handler, retry=Retry(attempts=3, max_retry_after=30)).templates.get("t")
    assert any("asked to wait" in note for note in caught.value.__notes__)


def test_replays_are_retried_with_one_key() -> None:
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["idempotency-key"])
        if len(keys) == 1:
            return problem(502, "upstream reset")
        body = {"id": "replay-1", "target_topic": "t", "status": "running", "total": 1}
        return httpx.Response(202, json={**body, "done": 0, "created_at": "2026-11-30T10:00:00Z"})

    assert client(handler).events.replay("tracseq.replay.test").id == "replay-1"
    assert len(keys) == 2 and keys[0] == keys[1]


def test_a_keyless_post_is_resent_only_when_it_certainly_did_not_arrive() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)  # never arrived: resent
        return problem(502, "upstream reset")  # may have arrived: not resent

    with pytest.raises(ServerError):
        client(handler).request("POST", "/api/plates", json={}, write=False)
    assert calls == ["POST", "POST"]
    calls.clear()
    with pytest.raises(ServerError):  # PUT is idempotent by definition: resent
        client(handler).request("PUT", "/api/plates/1", json={}, write=False)
    assert calls == ["PUT", "PUT", "PUT", "PUT"]


# -- deadline and breaker -------------------------------------------------------------------


def test_the_deadline_travels_in_a_header_and_bounds_the_retries() -> None:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(int(request.headers["x-request-deadline-ms"]))
        return problem(503, "busy")

    retry = Retry(attempts=50, initial_delay=0.02, max_delay=0.02)
    c = client(handler, retry=retry).with_options(deadline=0.2)
    with pytest.raises((ServerError, DeadlineExceededError)):
        c.templates.get("tpl-1")
    assert 0 < seen[0] <= 200
    assert seen == sorted(seen, reverse=True)
    assert 1 < len(seen) < 50


def test_the_breaker_fails_fast_once_the_server_keeps_failing() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return problem(500, "boom")

    breaker = CircuitBreaker("gw", minimum_calls=3, window_size=3, wait_duration=60)
    c = client(handler, retry=None, breaker=breaker)
    for _ in range(3):
        with pytest.raises(ServerError):
            c.templates.get("t")
    with pytest.raises(CircuitOpenError):
        c.templates.get("t")
    assert len(calls) == 3


def test_caller_errors_do_not_open_the_breaker() -> None:
    breaker = CircuitBreaker("gw", minimum_calls=3, window_size=3, wait_duration=60)
    c = client(lambda r: problem(404, "nope"), retry=None, breaker=breaker)
    for _ in range(5):
        with pytest.raises(NotFoundError):
            c.templates.get("t")
    assert breaker.state.value == "closed"


def test_breaker_true_is_one_breaker_per_base_url_for_the_whole_process() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return problem(503, "down")

    url = f"http://lims-{uuid.uuid4().hex[:6]}.test"
    first = TracSeqClient(url, transport=httpx.MockTransport(handler), retry=None, breaker=True)
    second = AsyncTracSeqClient(url + "/", breaker=True)
    other = TracSeqClient("http://elsewhere.test", breaker=True)
    assert first._options.breaker is second._options.breaker is not None
    assert other._options.breaker is not first._options.breaker
    for _ in range(10):  # the shared breaker's minimum_calls
        with pytest.raises(ServerError):
            first.templates.get("t")
    third = TracSeqClient(url, transport=httpx.MockTransport(handler), retry=None, breaker=True)
    with pytest.raises(CircuitOpenError):  # a new client of the same URL fails fast too
        third.templates.get("t")
    assert len(calls) == 10


# -- resources ------------------------------------------------------------------------------


def test_listing_is_lazy_and_follows_cursors() -> None:
    cursors: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        cursors.append(cursor)
        n = 0 if cursor is None else int(cursor)
        items = [dict(TEMPLATE, id=f"tpl-{n + i}") for i in range(2)]
        return httpx.Response(
            200, json={"items": items, "next_cursor": str(n + 2) if n < 4 else None}
        )

    c = client(handler)
    pager = c.templates.list(status="published", page_size=2)
    assert cursors == []
    assert [t.id for t in pager.first(3)] == ["tpl-0", "tpl-1", "tpl-2"]
    assert cursors == [None, "2"]
    assert len(list(pager)) == 6
    assert "<table>" in pager._repr_html_()


def test_extra_fields_from_a_newer_server_are_tolerated() -> None:
    field = {"name": "rin", "type": "decimal", "colour": "red", "rules": {"new_rule": 1}}
    body = dict(TEMPLATE, brand_new_field=[1, 2], fields=[field])
    c = client(lambda r: httpx.Response(200, json=body))
    t = c.templates.get("tpl-1")
    assert t.id == "tpl-1" and "RNA" in t._repr_html_()
    assert t.fields[0].name == "rin"  # nested request models forbid extras, but not here


def test_validate_submission_from_rows_a_path_and_a_file(tmp_path: Any) -> None:
    bodies: list[tuple[str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append((request.headers["content-type"], request.content))
        return httpx.Response(200, json={"valid": True, "rows_checked": 1})

    c = client(handler)
    rows = [{"sample_id": "S1", "volume": 10}, {"sample_id": "S2", "notes": "a,b"}]
    assert c.templates.validate_submission("tpl-1", rows=rows).valid
    assert bodies[-1] == ("text/csv", b'sample_id,volume,notes\nS1,10,\nS2,,"a,b"\n')
    path = tmp_path / "sheet.xlsx"
    path.write_bytes(b"PK\x03\x04rest-of-zip")
    c.templates.validate_submission("tpl-1", path)
    assert bodies[-1][0].endswith("spreadsheetml.sheet")
    c.templates.validate_submission("tpl-1", io.BytesIO(b"a,b\n1,2\n"))
    assert bodies[-1] == ("text/csv", b"a,b\n1,2\n")
    with pytest.raises(ConfigurationError, match="cannot read"):
        c.templates.validate_submission("tpl-1", tmp_path / "missing.csv")
    with pytest.raises(ConfigurationError, match="exactly one"):
        c.templates.validate_submission("tpl-1")


@pytest.mark.parametrize("size", [0, 1, 64 * 1024, 200_000])
def test_upload_progress_reaches_the_total_on_every_attempt(size: int) -> None:
    received: list[tuple[str | None, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append((request.headers.get("content-length"), request.read()))
        if len(received) == 1:
            return problem(503, "busy")
        return httpx.Response(200, json={"valid": True, "rows_checked": 1})

    sheet = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    seen: list[tuple[int, int]] = []
    report = client(handler).templates.validate_submission(
        "tpl-1", sheet, progress=lambda done, total: seen.append((done, total))
    )
    assert report.valid and len(received) == 2
    assert all(body == sheet for _, body in received)
    if size:
        assert all(length == str(size) for length, _ in received)
        assert seen.count((size, size)) == 2 and seen.count((0, size)) == 2
        assert [done for done, _ in seen] == sorted(done for done, _ in seen[: len(seen) // 2]) * 2


@pytest.mark.anyio
async def test_async_upload_progress() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.read() == b"a,b\n" * 50_000
        return httpx.Response(200, json={"valid": True, "rows_checked": 50_000})

    seen: list[tuple[int, int]] = []
    async with AsyncTracSeqClient(
        "http://tracseq.test", transport=httpx.MockTransport(handler)
    ) as c:
        await c.templates.validate_submission(
            "tpl-1", b"a,b\n" * 50_000, progress=lambda d, t: seen.append((d, t))
        )
    assert seen[0] == (0, 200_000) and seen[-1] == (200_000, 200_000) and len(seen) == 5


def test_add_field_appends_and_refuses_duplicates() -> None:
    patched: list[dict[str, Any]] = []
    fields = [{"name": "sample_id", "type": "text"}]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            patched.append(json.loads(request.content))
        return httpx.Response(200, json=dict(TEMPLATE, fields=fields))

    c = client(handler)
    c.templates.add_field("tpl-1", {"name": "volume", "type": "decimal", "unit": "uL"})
    assert [f["name"] for f in patched[0]["fields"]] == ["sample_id", "volume"]
    with pytest.raises(ConfigurationError, match="already has"):
        c.templates.add_field("tpl-1", {"name": "sample_id"})
    c.templates.update_field("tpl-1", "sample_id", required=True)
    assert patched[-1]["fields"][0]["required"] is True


def test_health_returns_the_report_even_when_unhealthy() -> None:
    body = {"status": "unhealthy", "services": {"templates": {"status": "unhealthy"}}}
    report = client(lambda r: httpx.Response(503, json=body)).health()
    assert not report.ok and report.http_status == 503 and "templates" in report.services


def test_raw_requests_keep_auth_retries_and_errors() -> None:
    c = client(lambda r: httpx.Response(200, json={"echo": r.headers.get("idempotency-key")}))
    assert c.request("GET", "/anything").json() == {"echo": None}
    assert c.request("POST", "/anything").json()["echo"].startswith("tsk-")
    with pytest.raises(NotFoundError):
        client(lambda r: problem(404, "no")).request("GET", "/nope")


def test_with_options_overrides_without_touching_the_original() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=TEMPLATE)

    base = client(handler)
    base.with_options(headers={"x-lab": "north"}, idempotency_key="fixed").templates.publish("t")
    base.templates.publish("t")
    assert seen[0].headers["x-lab"] == "north" and seen[0].headers["idempotency-key"] == "fixed"
    assert "x-lab" not in seen[1].headers and seen[1].headers["idempotency-key"] != "fixed"


def sse(*events: tuple[int, str]) -> bytes:
    return b"".join(
        f"id: {seq}\nevent: t\ndata: {json.dumps(dict(TAIL_EVENT, seq=seq, id=eid))}\n\n".encode()
        for seq, eid in events
    )


TAIL_EVENT = {
    "type": "tracseq.template.published",
    "source": "/templates",
    "topic": "tracseq.templates",
    "stored_at": "2026-01-01T00:00:00Z",
}


def test_tail_resumes_from_the_last_event_after_the_stream_breaks() -> None:
    resumes: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        resumes.append(request.headers.get("last-event-id"))
        if len(resumes) == 1:
            return httpx.Response(
                200, content=sse((5, "a"), (6, "b")), headers={"content-type": "text/event-stream"}
            )
        return httpx.Response(
            200, content=sse((7, "c")), headers={"content-type": "text/event-stream"}
        )

    with deterministic_mode():
        events = client(handler).events.tail(last_event_id="4")
        got = [next(events).id for _ in range(3)]
    assert got == ["a", "b", "c"]
    assert resumes == ["4", "6"]


# -- the async twin ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_client_has_the_same_behaviour() -> None:
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            keys.append(request.headers["idempotency-key"])
            if len(keys) == 1:
                return problem(503, "busy")
            return httpx.Response(201, json=TEMPLATE)
        if request.url.path == "/api/events/stream":
            return httpx.Response(
                200, content=sse((1, "e1")), headers={"content-type": "text/event-stream"}
            )
        return httpx.Response(200, json={"items": [TEMPLATE], "next_cursor": None})

    retry = Retry(attempts=3, initial_delay=0.0, max_delay=0.0)
    async with AsyncTracSeqClient(
        "http://tracseq.test", transport=httpx.MockTransport(handler), retry=retry
    ) as c:
        assert (await c.templates.create({"name": "RNA"})).id == "tpl-1"
        assert len(keys) == 2 and keys[0] == keys[1]
        assert [t.id async for t in c.templates.list()] == ["tpl-1"]
        async for event in c.events.tail(reconnect=False):
            assert event.id == "e1"
            break


@pytest.mark.anyio
async def test_async_client_respects_an_enclosing_deadline() -> None:
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(int(request.headers["x-request-deadline-ms"]))
        return httpx.Response(200, json=TEMPLATE)

    async with AsyncTracSeqClient(
        "http://tracseq.test", transport=httpx.MockTransport(handler)
    ) as c:
        with deadline(1.5):
            await c.templates.get("tpl-1")
    assert 1000 < seen[0] <= 1500
