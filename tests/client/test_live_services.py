"""Every client method against the live example services, through the gateway, over
real HTTP, on the real PostgreSQL and the Kafka-protocol broker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from services_support import ADMIN_TOKEN, serve_stack, wait_for

from tracseq_kit import ConflictError, NotFoundError, UnprocessableEntityError
from tracseq_kit.client import AsyncTracSeqClient, FastTransport, TracSeqClient
from tracseq_kit.events import CloudEvent
from tracseq_kit.schemas import TemplateStatus
from tracseq_kit.testing import PostgresSchema

SHEET_OK = b"sample_id,volume_ul\nS-001,12.5\nS-002,30\n"
SHEET_BAD = b"sample_id,volume_ul\nS-001,-4\n,30\n"


@pytest.fixture
def gateway_url(
    postgres_schema: PostgresSchema,
    postgres_database: str,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    monkeypatch.setenv("TRACSEQ_API_TOKEN", ADMIN_TOKEN)
    with serve_stack(
        template_dsn=postgres_schema.dsn,
        event_dsn=postgres_database,
        kafka_bootstrap=kafka_bootstrap,
    ) as gateway:
        yield gateway


TEMPLATE = {
    "name": "RNA-seq submission",
    "category": "submission",
    "tags": ["rna"],
    "fields": [
        {"name": "sample_id", "type": "text", "required": True, "rules": {"unique": True}},
        {"name": "volume_ul", "type": "decimal", "unit": "uL", "rules": {"min_value": 1}},
    ],
}


def test_every_sync_method_through_the_gateway(gateway_url: str, tmp_path: Any) -> None:
    with TracSeqClient(gateway_url) as c:
        assert c.health().ok
        # templates: create, read, change, publish, versions, status changes, clone
        t = c.templates.create(TEMPLATE)
        assert t.status is TemplateStatus.DRAFT and t.version == 0
        assert c.templates.get(t.id).name == TEMPLATE["name"]
        t = c.templates.update(t.id, {"description": "total RNA"})
        assert t.description == "total RNA"
        t = c.templates.add_field(t.id, {"name": "notes", "type": "text"})
        t = c.templates.update_field(t.id, "notes", label="Notes")
        assert [f.name for f in t.fields] == ["sample_id", "volume_ul", "notes"]
        assert t.fields[2].label == "Notes"
        published = c.templates.publish(t.id)
        assert published.status is TemplateStatus.PUBLISHED and published.version == 1
        assert [v.version for v in c.templates.versions(t.id)] == [1]
        assert c.templates.get(t.id, version=1).version == 1
        copy = c.templates.clone(t.id)
        assert copy.id != t.id and copy.status is TemplateStatus.DRAFT
        ids = [x.id for x in c.templates.list(page_size=1)]  # one page per template
        assert {t.id, copy.id} <= set(ids)
        assert [x.id for x in c.templates.list(status="published")] == [t.id]
        assert c.templates.deprecate(t.id).status is TemplateStatus.DEPRECATED
        assert c.templates.archive(copy.id).status is TemplateStatus.ARCHIVED

        # sample sheets: a path, bytes, rows; problems are reported, not raised
        path = tmp_path / "sheet.csv"
        path.write_bytes(SHEET_OK)
        assert c.templates.validate_submission(t.id, path).valid
        bad = c.templates.validate_submission(t.id, SHEET_BAD, include_rows=False)
        assert not bad.valid and {p.rule for p in bad.problems} >= {"min_value", "required"}
        rows = [{"sample_id": "S-9", "volume_ul": 5, "notes": "ok"}]
        assert c.templates.validate_submission(t.id, rows=rows, version=1).rows_checked == 1

        # typed errors from the services, through the gateway
        with pytest.raises(NotFoundError) as missing:
            c.templates.get("tpl-does-not-exist")
        assert missing.value.request_id
        with pytest.raises(ConflictError):
            c.templates.update(copy.id, {"name": "edit an archived one"})
        with pytest.raises(UnprocessableEntityError) as invalid:
            c.request("POST", "/api/templates", json={"name": ""})
        assert invalid.value.errors and invalid.value.errors[0]["field"]

        # events: what the template service emitted, stored by the event service
        published_events = wait_for(
            lambda: list(c.events.query(type="tracseq.template.published", subject=t.id))
        )
        stored = c.events.get(published_events[0].id)
        assert stored.data["template_id"] == t.id and stored.subject == t.id
        tail = c.events.tail(type="tracseq.template.*", last_event_id="0")
        assert next(tail).type.startswith("tracseq.template.")
        tail.close()
        source = f"/lab/robot-{time.monotonic_ns()}"
        accepted = c.events.publish(
            type="tracseq.sample.received", source=source, data={"barcode": "S-1"}
        )
        assert wait_for(lambda: list(c.events.query(source=source)))[0].id == accepted.id
        assert any(s.type == "tracseq.sample.received" for s in c.events.stats(window=600))
        seen: list[tuple[int, int]] = []
        job = c.events.replay(
            "replay.contract",
            type="tracseq.template.*",
            wait=True,
            progress=lambda done, total: seen.append((done, total)),
            poll_interval=0.1,
        )
        assert job.status == "finished" and job.done == job.total > 0
        assert seen[-1] == (job.total, job.total)
        assert c.events.replay_status(job.id).status == "finished"


@pytest.mark.anyio
@pytest.mark.parametrize("fast", [False, True], ids=["httpx-transport", "fast-transport"])
async def test_the_async_twin_through_the_gateway(gateway_url: str, fast: bool) -> None:
    source = f"/lab/robot-{time.monotonic_ns()}"  # the broker outlives this test's database
    transport = FastTransport() if fast else None
    async with AsyncTracSeqClient(gateway_url, transport=transport) as c:
        assert (await c.health()).ok
        t = await c.templates.create(TEMPLATE)
        t = await c.templates.publish(t.id)
        assert t.id in [x.id async for x in c.templates.list(status="published")]
        report = await c.templates.validate_submission(t.id, SHEET_OK)
        assert report.valid and report.rows_checked == 2
        event = CloudEvent[dict[str, str]](
            type="tracseq.sample.received", source=source, data={"barcode": "S-2"}
        )
        assert (await c.events.publish(event)).id == event.id
        async for stored in c.events.tail(source=source, last_event_id="0"):
            assert stored.id == event.id
            break
        with pytest.raises(NotFoundError):
            await c.events.get("no-such-event")
