"""The example notebooks run top to bottom against the live stack (the example services
behind a gateway, on real PostgreSQL and the Kafka-protocol broker), in a real kernel."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from services_support import ADMIN_TOKEN, serve_stack

from tracseq_kit.testing import PostgresSchema

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "examples" / "notebooks").glob("*.ipynb"))


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/html", output.data.get("text/plain", "")))
    return "".join(parts)


@pytest.mark.timeout(240)
def test_the_client_notebook_runs_against_the_stack(
    postgres_schema: PostgresSchema,
    postgres_database: str,
    kafka_bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert [n.name for n in NOTEBOOKS] == ["tracseq_client.ipynb"]
    notebook = nbformat.read(NOTEBOOKS[0], as_version=4)
    with serve_stack(
        template_dsn=postgres_schema.dsn,
        event_dsn=postgres_database,
        kafka_bootstrap=kafka_bootstrap,
    ) as gateway:
        monkeypatch.setenv("TRACSEQ_BASE_URL", gateway)  # the kernel inherits it
        monkeypatch.setenv("TRACSEQ_API_TOKEN", ADMIN_TOKEN)
        NotebookClient(
            notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
        ).execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(o.output_type != "error" for c in code for o in c.get("outputs", []))
    health, created, listing, validated, tailed = (_text(c) for c in code[:5])
    assert "<b>HealthStatus</b>" in health and "healthy" in health
    assert "<table>" in listing and "Notebook: plasma cfDNA intake" in listing
    assert "Notebook: plasma cfDNA intake" in created and "published" in created
    assert (
        "valid: False - 3 problems in 3 rows" in validated
        and "<b>SubmissionReport</b>" in validated
    )
    assert [line.split()[1] for line in tailed.splitlines()] == [
        "tracseq.template.created",
        "tracseq.template.published",
        "tracseq.template.submission.validated",
    ]
    assert list(tmp_path.iterdir()) == []  # the notebook cleans up its sheet
