"""``tracseq health|templates|events`` against the live example services behind the gateway
(real PostgreSQL, the Kafka-protocol broker), and the exit statuses scripts rely on."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from services_support import ADMIN_TOKEN, serve, serve_stack, wait_for

from tracseq_kit.cli import ExitCode, main
from tracseq_kit.gateway import Gateway, parse_config
from tracseq_kit.testing import PostgresSchema

pytestmark = pytest.mark.timeout(180)

TRACSEQ = str(Path(sys.executable).with_name("tracseq"))

TEMPLATE = {
    "name": "Plasma cfDNA [intake]",
    "category": "submission",
    "tags": ["cfdna"],
    "fields": [
        {"name": "sample_id", "type": "text", "required": True, "rules": {"unique": True}},
        {"name": "volume_ul", "type": "decimal", "unit": "uL", "rules": {"min_value": 1}},
    ],
}


@pytest.fixture(scope="module")
def stack(
    postgres_schema: PostgresSchema, postgres_database: str, kafka_bootstrap: str
) -> Iterator[str]:
    with (
        pytest.MonkeyPatch.context() as patch,
        serve_stack(
            template_dsn=postgres_schema.dsn,
            event_dsn=postgres_database,
            kafka_bootstrap=kafka_bootstrap,
        ) as gateway,
    ):
        patch.setenv("TRACSEQ_API_TOKEN", ADMIN_TOKEN)
        yield gateway


class Run:
    """``tracseq ARGS`` in this process against ``base_url``: (status, stdout, stderr)."""

    def __init__(self, base_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.base_url = base_url
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        status = main([*args, "--base-url", self.base_url])
        captured = self.capsys.readouterr()
        return status, captured.out, captured.err

    def json(self, *args: str) -> Any:
        status, out, err = self(*args, "--json")
        assert status == ExitCode.OK, err
        return json.loads(out)


@pytest.fixture
def tracseq(stack: str, capsys: pytest.CaptureFixture[str]) -> Run:
    return Run(stack, capsys)


@pytest.fixture
def published(tracseq: Run, tmp_path: Path) -> str:
    path = tmp_path / "template.json"
    path.write_text(json.dumps({**TEMPLATE, "name": f"cfDNA {uuid.uuid4().hex[:6]}"}))
    template_id: str = tracseq.json("templates", "create", str(path))["id"]
    assert tracseq("templates", "publish", template_id)[0] == ExitCode.OK
    return template_id


# -- templates ----------------------------------------------------------------------------


def test_create_show_publish_and_list(tracseq: Run, tmp_path: Path) -> None:
    path = tmp_path / "template.json"
    path.write_text(json.dumps(TEMPLATE))
    status, out, err = tracseq("templates", "create", str(path))
    assert status == ExitCode.OK and out.startswith("created draft "), err
    template_id = out.split()[-1]

    status, out, _ = tracseq("templates", "show", template_id)
    assert status == ExitCode.OK
    assert "Plasma cfDNA [intake]" in out  # user text is not taken for markup
    assert "sample_id" in out and "volume_ul" in out and "min_value=1" in out

    status, out, _ = tracseq("templates", "publish", template_id)
    assert (status, out.strip()) == (ExitCode.OK, "published 'Plasma cfDNA [intake]' as version 1")

    listed = tracseq.json("templates", "list", "--status", "published", "--tag", "cfdna")
    assert template_id in [t["id"] for t in listed]
    assert all(t["status"] == "published" for t in listed)
    status, out, _ = tracseq("templates", "list", "-q", "cfDNA", "--limit", "0")
    assert status == ExitCode.OK and template_id in out and "VERSION" in out
    shown = tracseq.json("templates", "show", template_id, "--version", "1")
    assert shown["version"] == 1 and shown["status"] == "published"


def test_validate_exits_0_for_a_valid_sheet_and_1_for_an_invalid_one(
    tracseq: Run, published: str, tmp_path: Path
) -> None:
    good = tmp_path / "good.csv"
    good.write_text("sample_id,volume_ul\nS-1,12.5\nS-2,30\n")
    status, out, _ = tracseq("templates", "validate", published, str(good))
    assert (status, out.strip()) == (ExitCode.OK, "valid: 2 rows checked")

    bad = tmp_path / "bad.csv"
    bad.write_text("sample_id,volume_ul\nS-1,-4\nS-1,30\n")
    status, out, _ = tracseq("templates", "validate", published, str(bad))
    assert status == ExitCode.FAILED
    assert "invalid: 2 problem(s) in 2 rows checked" in out and "volume_ul" in out
    report = json.loads(tracseq("templates", "validate", published, str(bad), "--json")[1])
    assert report["valid"] is False and {p["row"] for p in report["problems"]} == {1, 2}

    status, out, err = tracseq("templates", "validate", published, str(tmp_path / "nope.csv"))
    assert status == ExitCode.USAGE and out == ""
    assert err.strip() == f"tracseq: error: no such sheet: {str(tmp_path / 'nope.csv')!r}"


def test_user_mistakes_are_one_line_with_their_own_exit_status(
    tracseq: Run, tmp_path: Path
) -> None:
    status, _, err = tracseq("templates", "show", "no-such-template")
    assert status == ExitCode.CLIENT_ERROR
    assert err.startswith("tracseq: error: 404 Not Found") and "request id" in err
    assert err.count("\n") == 1 and "Traceback" not in err

    status, _, err = tracseq("templates", "show", "no-such-template", "--debug")
    assert status == ExitCode.CLIENT_ERROR and "Traceback" in err and "NotFoundError" in err

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    status, _, err = tracseq("templates", "create", str(broken))
    assert status == ExitCode.USAGE and "is not valid JSON" in err

    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"name": "", "fields": [{"name": "x", "type": "colour"}]}))
    status, _, err = tracseq("templates", "create", str(invalid))
    assert status == ExitCode.USAGE
    assert err.startswith("tracseq: error: invalid template: name: ") and "fields.0.type" in err

    status, _, err = tracseq("templates", "list", "--limit", "-3")
    assert status == ExitCode.USAGE and "--limit" in err
    status, _, err = tracseq("events", "query", "--since", "yesterday")
    assert status == ExitCode.USAGE and "not an ISO 8601 time" in err
    status, _, err = tracseq("events", "replay", "not a topic!")
    assert status == ExitCode.USAGE and err.startswith("tracseq: error: invalid replay request")
    assert err.count("\n") == 1
    status, _, err = tracseq("events", "publish", "--type", "t.x", "--source", "/s", "--data", "{")
    assert status == ExitCode.USAGE and "--data is not valid JSON" in err


# -- events -------------------------------------------------------------------------------


def test_publish_query_tail_and_replay(tracseq: Run) -> None:
    subject = f"plate-{uuid.uuid4().hex[:8]}"
    status, out, err = tracseq(
        "events",
        "publish",
        "--type",
        "tracseq.sample.received",
        "--source",
        "/lab/robot-3",
        "--subject",
        subject,
        "--data",
        '{"wells": 96}',
    )
    assert status == ExitCode.OK and out.startswith("accepted event "), err
    event_id = out.split()[-1]

    found = wait_for(lambda: tracseq.json("events", "query", "--subject", subject))
    assert [e["id"] for e in found] == [event_id] and found[0]["data"] == {"wells": 96}
    status, out, _ = tracseq("events", "query", "--type", "tracseq.sample.*", "--limit", "5")
    assert status == ExitCode.OK and "tracseq.sample.received" in out and "SEQ" in out

    seq = found[0]["seq"]
    status, out, _ = tracseq(
        "events", "tail", "--subject", subject, "--after", str(seq - 1), "--count", "1", "--json"
    )
    assert status == ExitCode.OK and json.loads(out)["id"] == event_id
    status, out, _ = tracseq("events", "tail", "--after", str(seq - 1), "--count", "1")
    assert out.split("\t")[0] == str(seq) and "tracseq.sample.received" in out

    job = tracseq.json("events", "replay", f"replayed-{subject}", "--subject", subject)
    assert (job["status"], job["done"], job["total"]) == ("finished", 1, 1)


# -- health and failures ------------------------------------------------------------------


def test_health_exits_0_when_healthy_and_1_when_not(tracseq: Run, stack: str) -> None:
    report = tracseq.json("health")
    assert report["status"] == "healthy" and set(report["services"]) == {"templates", "events"}
    status, out, _ = tracseq("health")
    assert status == ExitCode.OK and "templates" in out and "1/1 instances up" in out

    dead = parse_config({"pools": {"lims": {"instances": ["127.0.0.1:1"]}}, "routes": []})
    with serve(Gateway(dead)) as url:
        status, out, _ = Run(url, tracseq.capsys)("health")
    assert status == ExitCode.FAILED and "unhealthy" in out and "0/1 instances up" in out


async def _always_503(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b'{"title": "Service Unavailable", "status": 503, "detail": "maintenance"}'
    headers = [(b"content-type", b"application/problem+json"), (b"retry-after", b"0")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def test_server_errors_exit_5_after_the_retries(capsys: pytest.CaptureFixture[str]) -> None:
    with serve(_always_503) as url:
        status, _, err = Run(url, capsys)("templates", "list")
    assert status == ExitCode.SERVER_ERROR
    assert err.strip() == "tracseq: error: 503 Service Unavailable: maintenance"


def test_the_installed_command_unreachable_and_interrupted(stack: str) -> None:
    result = subprocess.run(
        [TRACSEQ, "--base-url", "http://127.0.0.1:9", "templates", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == ExitCode.UNREACHABLE and result.stdout == ""
    assert result.stderr.startswith("tracseq: error: GET http://127.0.0.1:9/api/templates")
    assert "Traceback" not in result.stderr

    tail = psutil.Popen(
        [TRACSEQ, "events", "tail", "--base-url", stack],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2)
    tail.send_signal(signal.SIGINT)
    _, err = tail.communicate(timeout=30)
    assert tail.returncode == ExitCode.INTERRUPTED and err.strip() == "tracseq: interrupted"
