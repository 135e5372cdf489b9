"""The services' OpenAPI contract, as a fuzzer and a client generator see it.

Schemathesis runs with every check it has (status codes, content types, response
schemas, headers, negative and positive data, unsupported methods, stateful links)
through the gateway against both services, with bounded examples per operation, and
must find nothing. The endless SSE operation is left to its own test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from services_support import ADMIN_TOKEN, serve_stack_urls

HERE = Path(__file__).parent
MAX_EXAMPLES = 10


@pytest.fixture(scope="module")
def gateway(postgres_database: str, kafka_bootstrap: str) -> Iterator[dict[str, str]]:
    with serve_stack_urls(
        template_dsn=postgres_database,
        event_dsn=postgres_database,
        kafka_bootstrap=kafka_bootstrap,
    ) as urls:
        yield urls


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert found is not None, "schemathesis is part of the test extra"
    return found


@pytest.mark.timeout(600)
@pytest.mark.parametrize("service", ["templates", "events"])
def test_schemathesis_finds_nothing_with_every_check(
    gateway: dict[str, str], service: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            _schemathesis(),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            f"{gateway[service]}/openapi.json",
            "--url",
            gateway["gateway"],
            "--header",
            f"Authorization: Bearer {ADMIN_TOKEN}",
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--workers",
            "1",
            "--generation-deterministic",
            "--seed",
            "20261204",
            "--exclude-path-regex",
            "/stream$",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=580,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
