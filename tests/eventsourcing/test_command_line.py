"""``python -m tracseq_kit.eventsourcing``: migrate, status, rebuild."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eventsourcing_support import Sample, SamplesByStatus, read_model

from tracseq_kit.eventsourcing import PostgresEventStore, Repository
from tracseq_kit.eventsourcing._cli import load_projection, main
from tracseq_kit.testing import PostgresSchema

pytestmark = pytest.mark.anyio

HERE = Path(__file__).parent


def run(*args: str, dsn: str) -> subprocess.CompletedProcess[str]:
    """The command in a child process, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "tracseq_kit.eventsourcing", "--dsn", dsn, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=HERE,  # so eventsourcing_support is importable as module:attribute
        env={**os.environ, "PYTHONPATH": str(HERE)},
    )


async def test_rebuild_and_status_from_the_command_line(
    pool: Any, postgres_schema: PostgresSchema
) -> None:
    samples = Repository(Sample, PostgresEventStore(pool, topic=None), source="/s")
    await samples.save_all([Sample.receive(f"S-{n}", barcode=str(n)) for n in range(5)])
    assert await read_model(pool) == {}
    done = run("rebuild", "eventsourcing_support:SamplesByStatus", dsn=postgres_schema.dsn)
    assert done.returncode == 0, done.stderr
    assert "rebuilt samples_by_status: 5 events applied" in done.stdout
    assert len(await read_model(pool)) == 5
    status = run("status", dsn=postgres_schema.dsn)
    assert status.returncode == 0, status.stderr
    assert "samples_by_status: at 5, 0 behind" in status.stdout
    assert run("migrate", dsn=postgres_schema.dsn).stdout.strip() == "up to date"


def test_bad_targets_exit_with_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dsn", "postgresql://nowhere/x", "rebuild", "no_such_module:x"]) == 2
    assert "cannot import" in capsys.readouterr().err
    assert main(["--dsn", "postgresql://nowhere/x", "rebuild", "eventsourcing_support:Sample"]) == 2
    assert "is not a Projection" in capsys.readouterr().err
    assert main(["--dsn", "", "status"]) == 2
    assert "--dsn" in capsys.readouterr().err
    assert main(["--dsn", "postgresql://postgres@127.0.0.1:1/test", "status"]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_load_projection_takes_instances_and_classes() -> None:
    assert isinstance(load_projection("eventsourcing_support:SamplesByStatus"), SamplesByStatus)
    with pytest.raises(Exception, match="module:attribute"):
        load_projection("no colon")
