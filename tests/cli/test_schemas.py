"""``tracseq events schemas`` and ``tracseq events check-compat``, in-process and as the
installed command (exit 1 on a breaking change, 2 on a bad --registry)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tracseq_kit.cli import ExitCode, main

TRACSEQ = str(Path(sys.executable).with_name("tracseq"))

V1 = """
from pydantic import BaseModel
from tracseq_kit.events import EventRegistry

class Received(BaseModel):
    sample_id: str
    volume_ul: float

registry = EventRegistry()
registry.register("tracseq.sample.received", Received)

def make():
    return registry
"""
V2_BREAKING = V1.replace("    volume_ul: float", "    volume_ul: float\n    operator: str")
V2_FINE = V1.replace("    volume_ul: float", "    volume_ul: float\n    operator: str = ''")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(project: Path, module: str, source: str) -> None:
    (project / f"{module}.py").write_text(textwrap.dedent(source))


def test_schemas_to_a_folder_then_check_compat(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(project, "events_v1", V1)
    assert main(["events", "schemas", "--registry", "events_v1:registry", "--out", "base"]) == 0
    assert (project / "base" / "tracseq.sample.received.v1.schema.json").is_file()
    write(project, "events_fine", V2_FINE)
    assert main(["events", "check-compat", "base", "--registry", "events_fine:make"]) == 0
    assert "compatible" in capsys.readouterr().out
    write(project, "events_bad", V2_BREAKING)
    code = main(["events", "check-compat", "base", "--registry", "events_bad:registry"])
    assert code == ExitCode.FAILED
    out = capsys.readouterr().out
    assert "1 change(s) would break readers" in out
    assert "$.operator: field added as required" in out
    assert (
        main(["events", "check-compat", "base", "--registry", "events_bad:registry", "--json"]) == 1
    )
    (problem,) = json.loads(capsys.readouterr().out)
    assert problem["path"] == "$.operator" and problem["version"] == 1


def test_bad_registries_are_usage_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(project, "events_v1", V1)
    for spec in (
        "events_v1",
        "missing_module:registry",
        "events_v1:nothing",
        "events_v1:BaseModel",
    ):
        assert main(["events", "schemas", "--registry", spec]) == ExitCode.USAGE
        assert "tracseq: error:" in capsys.readouterr().err
    assert main(["events", "check-compat", "nowhere", "--registry", "events_v1:registry"]) == 2


def test_the_installed_command_prints_the_schemas_and_fails_ci_on_a_break(project: Path) -> None:
    write(project, "events_v1", V1)
    printed = subprocess.run(
        [TRACSEQ, "events", "schemas", "--registry", "events_v1:registry"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (project / "baseline.json").write_text(printed.stdout)
    assert list(json.loads(printed.stdout)) == ["urn:tracseq:event:tracseq.sample.received:v1"]
    write(project, "events_bad", V2_BREAKING)
    check = subprocess.run(
        [TRACSEQ, "events", "check-compat", "baseline.json", "--registry", "events_bad:registry"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 1, check.stderr
    assert "operator" in check.stdout
