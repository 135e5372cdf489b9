"""The README's run command, followed exactly as a newcomer would, in a fresh copy of the
project with a fresh virtual environment: install, `tracseq dev` in the background, create
and publish a template through the gateway with the CLI, see its events in the event
service, stop with Ctrl-C, and check that nothing is left running."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tracseq_kit.cli._dev import _port_free

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PORTS = (8000, 8083, 8095)
_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", ".mypy_cache",
    ".ruff_cache", ".hypothesis", "site",
)  # fmt: skip


def readme_command(heading: str) -> str:
    """The one-line shell command in the first code block under ``## heading``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1]
    match = re.search(r"```bash\n(.+?)\n```", section, re.S)
    assert match is not None, f"no bash block under '## {heading}'"
    return match[1].strip()


def test_the_readme_commands_are_the_promised_ones() -> None:
    setup = "python3 -m venv .venv && .venv/bin/pip install -e '.[all]'"
    assert readme_command("Run the stack") == f"{setup} && .venv/bin/tracseq dev"
    assert readme_command("Run the tests") == f"{setup} && .venv/bin/python -m pytest"
    assert readme_command("Run the tests") in (ROOT / ".ci" / "run").read_text()


def _port_taken(port: int) -> bool:
    return not _port_free(port)  # as tracseq dev checks it


def _ours(project: Path) -> list[psutil.Process]:
    """Processes started from the copy (its venv's Python, the services, the servers)."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        with_us = " ".join(process.info["cmdline"] or []) + " " + (process.info["cwd"] or "")
        if str(project) in with_us and process.pid != os.getpid():
            found.append(process)
    return found


@pytest.mark.timeout(1200)
def test_following_the_readme_on_a_fresh_virtual_environment(tmp_path: Path) -> None:
    taken = [p for p in DEFAULT_PORTS if _port_taken(p)]
    assert not taken, f"the README's stack needs ports {DEFAULT_PORTS}; taken here: {taken}"
    project = tmp_path / "tracseq-kit"
    shutil.copytree(ROOT, project, ignore=_IGNORE)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
    )
    stack = psutil.Popen(
        ["bash", "-c", readme_command("Run the stack")],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a terminal's foreground job: Ctrl-C reaches the group
    )
    output: list[str] = []
    try:
        assert stack.stdout is not None
        for line in stack.stdout:
            output.append(line)
            if line.startswith("ready"):
                break
        else:
            pytest.fail("the stack never got ready:\n" + "".join(output[-40:]))
        urls = dict(line.split(None, 1) for line in output if re.match(r"^[a-z]+ +\S", line))
        assert urls["gateway"].strip() == "http://127.0.0.1:8000"

        tracseq = project / ".venv" / "bin" / "tracseq"

        def cli(*args: str) -> Any:
            result = subprocess.run(
                [str(tracseq), *args, "--json"],
                cwd=project,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert result.returncode == 0, result.stderr
            return json.loads(result.stdout)

        (project / "rna.json").write_text(
            json.dumps(
                {
                    "name": "RNA-seq submission",
                    "fields": [
                        {"name": "sample_id", "type": "text", "required": True},
                        {"name": "volume_ul", "type": "decimal", "rules": {"min_value": 1}},
                    ],
                }
            )
        )
        template = cli("templates", "create", "rna.json")
        published = cli("templates", "publish", template["id"])
        assert published["status"] == "published" and published["version"] == 1
        wanted = {"tracseq.template.created", "tracseq.template.published"}
        deadline = time.monotonic() + 60
        while {e["type"] for e in cli("events", "query", "--subject", template["id"])} < wanted:
            assert time.monotonic() < deadline, "the events never reached the event service"
            time.sleep(0.5)

        ours = _ours(project)
        assert len(ours) >= 5  # tracseq dev, two services, the gateway, the servers
        os.killpg(stack.pid, signal.SIGINT)  # Ctrl-C
        rest, _ = stack.communicate(timeout=120)
        assert stack.returncode == 0, "".join(output) + rest
        assert rest.rstrip().endswith("stopped")
        psutil.wait_procs(ours, timeout=15)
        assert [p.info["cmdline"] for p in _ours(project)] == []
        assert [p for p in DEFAULT_PORTS if _port_taken(p)] == []
    finally:
        if stack.is_running():
            for child in stack.children(recursive=True):
                child.kill()
            stack.kill()
