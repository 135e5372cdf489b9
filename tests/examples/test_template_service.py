"""The template service against the real PostgreSQL: CRUD, versions, validation, outbox."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from examples.template_service.app import TemplateServiceSettings, create_app
from openpyxl import Workbook
from pydantic import SecretStr
from services_support import serve

from tracseq_kit.testing import IdentityMinter, PostgresSchema

MINTER = IdentityMinter(audience="template_service")
ALICE = MINTER.auth("alice", scopes=["templates:read", "templates:write"])

DNA_TEMPLATE: dict[str, Any] = {
    "name": "DNA submission",
    "description": "Sheet for whole-genome sequencing submissions",
    "category": "submission",
    "tags": ["wgs", "dna"],
    "fields": [
        {
            "name": "sample_id",
            "type": "barcode",
            "barcode_pattern": r"S-\d{4}",
            "required": True,
            "rules": {"unique": True},
        },
        {"name": "sample_type", "type": "enum", "options": ["DNA", "RNA"], "required": True},
        {"name": "concentration", "type": "decimal", "unit": "ng/ul", "rules": {"min_value": 0}},
    ],
    "cross_field_rules": [
        {"when_field": "sample_type", "equals": ["DNA"], "then_required": ["concentration"]}
    ],
}


@pytest.fixture
def client(postgres_schema: PostgresSchema) -> Iterator[httpx.Client]:
    settings = TemplateServiceSettings(
        postgres_dsn=SecretStr(postgres_schema.dsn), log_format="json", identity_keys=MINTER.keys
    )
    with (
        serve(create_app(settings)) as url,
        httpx.Client(base_url=url, timeout=30, auth=ALICE) as c,
    ):
        c.dsn = postgres_schema.dsn  # type: ignore[attr-defined]
        yield c


def outbox_types(client: httpx.Client, *subjects: str) -> list[str]:
    """The types of the events in the outbox, in order (about ``subjects`` if given)."""

    async def fetch() -> list[Any]:
        conn = await asyncpg.connect(client.dsn)  # type: ignore[attr-defined]
        try:
            return list(await conn.fetch("SELECT value, headers FROM tracseq_outbox ORDER BY id"))
        finally:
            await conn.close()

    rows = asyncio.run(fetch())
    types = []
    for r in rows:
        headers = dict(json.loads(r["headers"]))
        if not subjects or headers.get("ce_subject") in subjects:
            types.append(headers["ce_type"])
    return types


def test_health_keeps_the_lab_shape(client: httpx.Client) -> None:
    body = client.get("/health").json()
    assert body["service"] == "template_service" and body["status"] == "healthy"
    assert client.get("/readyz").status_code == 200
    assert "paths" in client.get("/openapi.json").json()


def test_template_life_cycle_with_versions_and_events(client: httpx.Client) -> None:
    created = client.post("/api/templates", json=DNA_TEMPLATE)
    assert created.status_code == 201, created.text
    tpl = created.json()
    assert tpl["status"] == "draft" and tpl["created_by"] == "alice"
    tid = tpl["id"]
    patched = client.patch(f"/api/templates/{tid}", json={"description": "v1 sheet"})
    assert patched.json()["description"] == "v1 sheet"
    published = client.post(f"/api/templates/{tid}/publish").json()
    assert published["status"] == "published" and published["version"] == 1
    # Editing a published template starts the draft of version 2; version 1 stays frozen.
    draft = client.patch(f"/api/templates/{tid}", json={"description": "v2 sheet"}).json()
    assert draft["status"] == "draft" and draft["version"] == 1
    client.post(f"/api/templates/{tid}/publish")
    versions = client.get(f"/api/templates/{tid}/versions").json()
    assert [v["version"] for v in versions] == [1, 2]
    assert client.get(f"/api/templates/{tid}/versions/1").json()["description"] == "v1 sheet"
    assert client.get(f"/api/templates/{tid}/versions/2").json()["description"] == "v2 sheet"
    assert client.get(f"/api/templates/{tid}/versions/9").status_code == 404
    clone = client.post(f"/api/templates/{tid}/clone").json()
    assert clone["status"] == "draft" and clone["name"] == "DNA submission (copy)"
    assert client.post(f"/api/templates/{tid}/archive").json()["status"] == "archived"
    conflict = client.patch(f"/api/templates/{tid}", json={"name": "renamed"})
    assert conflict.status_code == 409
    assert conflict.headers["content-type"] == "application/problem+json"
    assert outbox_types(client) == [
        "tracseq.template.created",
        "tracseq.template.updated",
        "tracseq.template.published",
        "tracseq.template.updated",
        "tracseq.template.published",
        "tracseq.template.created",
        "tracseq.template.archived",
    ]


def test_listing_filters_and_cursor_pagination(client: httpx.Client) -> None:
    for i in range(7):
        body = {
            **DNA_TEMPLATE,
            "name": f"QC sheet {i}",
            "category": "qc" if i % 2 else "submission",
            "tags": ["even"] if i % 2 == 0 else ["odd"],
        }
        assert client.post("/api/templates", json=body).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/templates", params=params).json()
        seen += [t["name"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))  # no page repeats an item
    assert sorted(n for n in seen if n.startswith("QC sheet")) == [
        f"QC sheet {i}" for i in range(7)
    ]
    assert {
        t["category"]
        for t in client.get("/api/templates", params={"category": "qc"}).json()["items"]
    } == {"qc"}
    odd = client.get("/api/templates", params={"tag": "odd"}).json()["items"]
    assert sorted(t["name"] for t in odd) == ["QC sheet 1", "QC sheet 3", "QC sheet 5"]
    assert [
        t["name"] for t in client.get("/api/templates", params={"q": "sheet 4"}).json()["items"]
    ] == ["QC sheet 4"]
    assert client.get("/api/templates", params={"cursor": "zz"}).status_code == 400
    assert client.get("/api/templates", params={"status": "bogus"}).status_code == 422


def test_validation_of_csv_and_xlsx_uploads(client: httpx.Client) -> None:
    tid = client.post("/api/templates", json=DNA_TEMPLATE).json()["id"]
    client.post(f"/api/templates/{tid}/publish")
    good = b"sample_id,sample_type,concentration\nS-0001,DNA,12.5\nS-0002,RNA,\n"
    report = client.post(
        f"/api/templates/{tid}/validate", content=good, headers={"content-type": "text/csv"}
    ).json()
    assert report["valid"] and report["rows"][0]["concentration"] == "12.5"
    bad = b"sample_id,sample_type,concentration\nS-0001,DNA,\nS-0001,Plasma,x\n"
    report = client.post(f"/api/templates/{tid}/validate", content=bad).json()
    assert not report["valid"]
    assert sorted((p["row"], p["rule"]) for p in report["problems"]) == [
        (1, "cross_field"),
        (2, "options"),
        (2, "type"),
        (2, "unique"),
    ]
    wb = Workbook()
    ws = wb.active
    ws.append(["sample_id", "sample_type", "concentration"])
    ws.append(["S-0009", "DNA", 3.5])
    buf = io.BytesIO()
    wb.save(buf)
    xlsx = client.post(f"/api/templates/{tid}/validate?version=1", content=buf.getvalue()).json()
    assert xlsx["valid"], xlsx
    empty = client.post(f"/api/templates/{tid}/validate", content=b"")
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    latin = client.post(
        f"/api/templates/{tid}/validate", content="sample_id\nS-é".encode("latin-1")
    )
    assert latin.status_code == 422 and "UTF-8" in latin.json()["detail"]
    assert outbox_types(client)[-1] == "tracseq.template.submission.validated"


def test_user_mistakes_are_clear_problems(client: httpx.Client) -> None:
    assert client.get("/api/templates/nope").status_code == 404
    typo = client.post("/api/templates", json={**DNA_TEMPLATE, "nmae": "x"})
    assert typo.status_code == 422 and typo.headers["content-type"] == "application/problem+json"
    no_options = {**DNA_TEMPLATE, "fields": [{"name": "t", "type": "enum"}]}
    assert client.post("/api/templates", json=no_options).status_code == 422
    broken = client.post(
        "/api/templates", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code in (400, 422)
    empty = client.post("/api/templates", json={"name": "empty"}).json()
    assert client.post(f"/api/templates/{empty['id']}/publish").status_code == 409


def test_events_reach_kafka_through_the_outbox_relay(
    postgres_schema: PostgresSchema, kafka_bootstrap: str
) -> None:
    from aiokafka import AIOKafkaConsumer

    settings = TemplateServiceSettings(
        postgres_dsn=SecretStr(postgres_schema.dsn),
        kafka_bootstrap=kafka_bootstrap,
        identity_keys=MINTER.keys,
    )
    with (
        serve(create_app(settings)) as url,
        httpx.Client(base_url=url, timeout=30, auth=ALICE) as c,
    ):
        tid = c.post("/api/templates", json=DNA_TEMPLATE).json()["id"]
        c.post(f"/api/templates/{tid}/publish")

        async def read() -> list[str]:
            consumer = AIOKafkaConsumer(
                "tracseq.templates",
                bootstrap_servers=kafka_bootstrap,
                auto_offset_reset="earliest",
                group_id=None,
            )
            await consumer.start()
            types: list[str] = []
            try:
                async with asyncio.timeout(30):
                    while "tracseq.template.published" not in types:
                        for records in (await consumer.getmany(timeout_ms=300)).values():
                            types += [
                                dict(r.headers)["ce_type"].decode()
                                for r in records
                                if r.key == tid.encode()
                            ]
            finally:
                await consumer.stop()
            return types

        assert asyncio.run(read()) == ["tracseq.template.created", "tracseq.template.published"]


def test_idempotency_keys_give_one_effect_per_logical_write(client: httpx.Client) -> None:
    key = {"idempotency-key": "create-dna-1"}
    first = client.post("/api/templates", json=DNA_TEMPLATE, headers=key)
    again = client.post("/api/templates", json=DNA_TEMPLATE, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    names = [t["id"] for t in client.get("/api/templates", params={"limit": 200}).json()["items"]]
    assert names.count(first.json()["id"]) == 1
    other = client.post("/api/templates", json={**DNA_TEMPLATE, "name": "other"}, headers=key)
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    tid = first.json()["id"]
    p1 = client.post(f"/api/templates/{tid}/publish", headers={"idempotency-key": "pub-1"})
    p2 = client.post(f"/api/templates/{tid}/publish", headers={"idempotency-key": "pub-1"})
    assert p1.json()["version"] == p2.json()["version"] == 1  # not published twice
    assert client.post(f"/api/templates/{tid}/deprecate").json()["status"] == "deprecated"
    assert client.post(f"/api/templates/{tid}/deprecate").status_code == 409


def test_multipart_upload(client: httpx.Client) -> None:
    tid = client.post("/api/templates", json=DNA_TEMPLATE).json()["id"]
    sheet = b"sample_id,sample_type,concentration\nS-0001,DNA,1\n"
    r = client.post(
        f"/api/templates/{tid}/validate", files={"file": ("plate.csv", sheet, "text/csv")}
    )
    assert r.status_code == 200 and r.json()["valid"]
    missing = client.post(
        f"/api/templates/{tid}/validate",
        data={"other": "x"},
        files={"nofile": ("x.csv", b"a", "text/csv")},
    )
    assert missing.status_code == 422 and "'file'" in missing.json()["detail"]


def test_size_limits_are_413(postgres_schema: PostgresSchema) -> None:
    settings = TemplateServiceSettings(
        postgres_dsn=SecretStr(postgres_schema.dsn), max_sheet_rows=2, identity_keys=MINTER.keys
    )
    with (
        serve(create_app(settings)) as url,
        httpx.Client(base_url=url, timeout=30, auth=ALICE) as c,
    ):
        tid = c.post("/api/templates", json=DNA_TEMPLATE).json()["id"]
        rows = b"sample_id,sample_type,concentration\n" + b"S-0001,RNA,\n" * 3
        r = c.post(f"/api/templates/{tid}/validate", content=rows)
        assert r.status_code == 413 and "more than 2 rows" in r.json()["detail"]
        huge = c.post(f"/api/templates/{tid}/validate", content=b"x" * (11 * 1024 * 1024))
        assert huge.status_code == 413


def test_validation_uses_the_latest_published_version_not_the_draft(client: httpx.Client) -> None:
    tid = client.post("/api/templates", json=DNA_TEMPLATE).json()["id"]
    client.post(f"/api/templates/{tid}/publish")
    # the draft of version 2 makes concentration required for every sample
    fields = [dict(f) for f in DNA_TEMPLATE["fields"]]
    fields[2] = {**fields[2], "required": True}
    client.patch(f"/api/templates/{tid}", json={"fields": fields})
    sheet = b"sample_id,sample_type,concentration\nS-0001,RNA,\n"
    assert client.post(f"/api/templates/{tid}/validate", content=sheet).json()["valid"]
    client.post(f"/api/templates/{tid}/publish")
    report = client.post(f"/api/templates/{tid}/validate", content=sheet).json()
    assert [p["rule"] for p in report["problems"]] == ["required"]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"description": None}, {"description": ""}),
        ({"tags": None}, {"tags": []}),
        ({"fields": None, "cross_field_rules": None}, {"fields": [], "cross_field_rules": []}),
        ({"cross_field_rules": None}, {"cross_field_rules": []}),
    ],
    ids=repr,
)
def test_patch_null_clears_an_optional_part(
    client: httpx.Client, patch: dict[str, Any], expected: dict[str, Any]
) -> None:
    tid = client.post("/api/templates", json=DNA_TEMPLATE).json()["id"]
    r = client.patch(f"/api/templates/{tid}", json=patch)
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in expected} == expected


@pytest.mark.parametrize(
    "patch",
    [
        {"name": None},
        {"category": None},
        {"category": None, "tags": None},
        {"fields": None},  # the cross-field rule still refers to the fields: a clear 422
        {"name": ""},
    ],
    ids=repr,
)
def test_patch_null_on_a_required_part_is_a_422_with_the_field(
    client: httpx.Client, patch: dict[str, Any]
) -> None:
    tid = client.post("/api/templates", json=DNA_TEMPLATE).json()["id"]
    r = client.patch(f"/api/templates/{tid}", json=patch)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"] and all(e["field"].startswith("body") for e in r.json()["errors"])
    assert client.get(f"/api/templates/{tid}").json()["name"] == DNA_TEMPLATE["name"]


def test_a_step_that_changes_nothing_is_a_409_and_emits_no_event(client: httpx.Client) -> None:
    tid = client.post("/api/templates", json=DNA_TEMPLATE).json()["id"]
    assert client.post(f"/api/templates/{tid}/publish").status_code == 200
    again = client.post(f"/api/templates/{tid}/publish")
    assert again.status_code == 409 and "already published as version 1" in again.json()["detail"]
    # a PATCH back to the published definition, then publish: nothing changed either
    client.patch(f"/api/templates/{tid}", json={"description": "changed"})
    client.patch(f"/api/templates/{tid}", json={"description": DNA_TEMPLATE["description"]})
    same = client.post(f"/api/templates/{tid}/publish")
    assert same.status_code == 409 and "nothing changed since version 1" in same.json()["detail"]
    assert client.post(f"/api/templates/{tid}/archive").status_code == 200
    twice = client.post(f"/api/templates/{tid}/archive")
    assert twice.status_code == 409 and "already archived" in twice.json()["detail"]
    deprecate = client.post(f"/api/templates/{tid}/deprecate")
    assert deprecate.status_code == 409 and "archived" in deprecate.json()["detail"]
    # a PATCH that changes nothing is answered, but is no event either
    other = client.post("/api/templates", json={**DNA_TEMPLATE, "name": "other"}).json()["id"]
    unchanged = client.patch(f"/api/templates/{other}", json={"name": "other"})
    assert unchanged.status_code == 200
    assert outbox_types(client, tid, other) == [
        "tracseq.template.created",
        "tracseq.template.published",
        "tracseq.template.updated",
        "tracseq.template.updated",
        "tracseq.template.archived",
        "tracseq.template.created",
    ]


def test_create_names_the_new_template_in_location(client: httpx.Client) -> None:
    r = client.post("/api/templates", json=DNA_TEMPLATE)
    assert r.headers["location"] == f"/api/templates/{r.json()['id']}"
    clone = client.post(f"/api/templates/{r.json()['id']}/clone")
    assert clone.headers["location"] == f"/api/templates/{clone.json()['id']}"


def test_writes_record_the_verified_subject_never_a_header(client: httpx.Client) -> None:
    forged = {"X-Tracseq-Identity-Subject": "mallory", "X-Tracseq-Identity-Scopes": "admin"}
    tid = client.post("/api/templates", json=DNA_TEMPLATE, headers=forged).json()["id"]
    bob = MINTER.auth("bob", scopes=["templates:write", "templates:read"])
    changed = client.patch(
        f"/api/templates/{tid}", json={"description": "bob's"}, auth=bob, headers=forged
    ).json()
    assert (changed["created_by"], changed["updated_by"]) == ("alice", "bob")

    async def actors() -> list[tuple[str, str]]:
        conn = await asyncpg.connect(client.dsn)  # type: ignore[attr-defined]
        try:
            rows = await conn.fetch(
                "SELECT headers FROM tracseq_outbox WHERE key = $1 ORDER BY id", tid
            )
        finally:
            await conn.close()
        return [
            (h["ce_type"], h["ce_actor"]) for h in (dict(json.loads(r["headers"])) for r in rows)
        ]

    assert asyncio.run(actors()) == [
        ("tracseq.template.created", "alice"),
        ("tracseq.template.updated", "bob"),
    ]


def test_callers_without_the_scope_or_without_an_identity_are_refused(
    client: httpx.Client,
) -> None:
    reader = MINTER.auth("robot", scopes=["templates:read"])
    assert client.get("/api/templates", auth=reader).status_code == 200
    refused = client.post("/api/templates", json=DNA_TEMPLATE, auth=reader)
    assert refused.status_code == 403 and "templates:write" in refused.json()["detail"]
    with httpx.Client(base_url=str(client.base_url)) as anonymous:
        for method, path in (("GET", "/api/templates"), ("POST", "/api/templates")):
            r = anonymous.request(method, path, json=DNA_TEMPLATE)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.get("/readyz").status_code == 200
