"""Event-sourcing errors a handler lets through become the problems a client can act on."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tracseq_kit import (
    AggregateNotFoundError,
    CommandRejectedError,
    ConcurrencyError,
    DuplicateEventError,
)
from tracseq_kit.service import create_service
from tracseq_kit.settings import ServiceSettings

pytestmark = pytest.mark.anyio

ERRORS: dict[str, Exception] = {
    "missing": AggregateNotFoundError("sample", "S-1"),
    "raced": ConcurrencyError("sample-S-1", expected=3, actual=4),
    "refused": CommandRejectedError(
        stream_type="sample",
        aggregate_id="S-1",
        command="sequence",
        state="received",
        reason="the library is not prepared",
        allowed=("library_prepared",),
    ),
    "twice": DuplicateEventError("e-1"),
}


def _app() -> FastAPI:
    app = create_service(ServiceSettings(allow_anonymous=True), configure_logs=False)

    @app.get("/{name}")
    async def fail(name: str) -> None:
        raise ERRORS[name]

    return app


@pytest.mark.parametrize(
    ("name", "status", "fields"),
    [
        ("missing", 404, {"stream_type": "sample", "aggregate_id": "S-1"}),
        ("raced", 409, {"stream_id": "sample-S-1", "actual_version": 4}),
        (
            "refused",
            409,
            {"command": "sequence", "state": "received", "allowed": ["library_prepared"]},
        ),
        ("twice", 409, {"event_id": "e-1"}),
    ],
)
async def test_domain_errors_are_problems_with_their_fields(
    name: str, status: int, fields: dict[str, object]
) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(_app()), base_url="http://t") as c:
        r = await c.get(f"/{name}")
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["detail"] == str(ERRORS[name])
    assert fields.items() <= body.items()
