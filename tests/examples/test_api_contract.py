"""The services' OpenAPI contract, as a fuzzer and a client generator see it.

Schemathesis runs with every check it has (status codes, content types, response
schemas, headers, negative and positive data, unsupported methods, stateful links)
through the gateway against both services, with bounded examples per operation, and
must find nothing. The endless SSE operation is left to its own test.

The auth service is fuzzed directly (it is the issuer the gateway trusts, not a route
behind it), with an admin token so its admin API is reached, and brute-force limits
high enough that the fuzzer is not taken for an attacker.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from auth_support import Auth, serve_auth
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


def _run_schemathesis(schema: str, url: str, tmp_path: Path, *options: str) -> None:
    result = subprocess.run(
        [
            _schemathesis(),
            "--config-file",
            str(HERE / "schemathesis.toml"),
            "run",
            schema,
            "--url",
            url,
            "--checks",
            "all",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--workers",
            "1",
            "--generation-deterministic",
            "--seed",
            "20261204",
            *options,
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=580,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("service", ["templates", "events"])
def test_schemathesis_finds_nothing_with_every_check(
    gateway: dict[str, str], service: str, tmp_path: Path
) -> None:
    schema = f"{gateway[service]}/openapi.json"
    _run_schemathesis(
        schema,
        gateway["gateway"],
        tmp_path,
        "--exclude-path-regex",
        "/stream$",
        "--header",
        f"Authorization: Bearer {ADMIN_TOKEN}",
    )


@pytest.fixture(scope="module")
def auth_service(postgres_database: str) -> Iterator[Auth]:
    lenient = {
        "auth_failures_per_client": 1_000_000,
        "auth_failures_per_address": 1_000_000,
        "access_token_ttl": 3600,
    }
    with serve_auth(postgres_database, **lenient) as running:
        yield running


@pytest.mark.timeout(600)
def test_schemathesis_finds_nothing_in_the_auth_service(auth_service: Auth, tmp_path: Path) -> None:
    token = auth_service.robot_token()
    schema = f"{auth_service.url}/openapi.json"
    _run_schemathesis(schema, auth_service.url, tmp_path, "-H", f"Authorization: Bearer {token}")
