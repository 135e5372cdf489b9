"""Each service's OpenAPI document is one a widely used client generator takes whole.

openapi-python-client must generate a client from it without a warning, and every
operation with a JSON answer must come out typed (not ``Any``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from examples.auth_service.app import AuthServiceSettings
from examples.auth_service.app import create_app as create_auth_service
from examples.event_service.app import create_app as create_event_service
from examples.template_service.app import create_app as create_template_service
from fastapi import FastAPI


def _auth_service() -> FastAPI:
    # the one setting without a default: the key that encrypts the stored signing keys
    key = Fernet.generate_key().decode()
    return create_auth_service(AuthServiceSettings(key_encryption_key=key))


SERVICES = {
    "templates": create_template_service,
    "events": create_event_service,
    "auth": _auth_service,
}


def _generate(doc_path: Path, out: Path) -> str:
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(doc_path),
            "--meta",
            "none",
            "--output-path",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def _success_schema(operation: dict[str, Any]) -> str | None:
    """The model a 2xx JSON answer refers to, or None."""
    for status, response in operation["responses"].items():
        if status.startswith("2"):
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
            if ref:
                return str(ref.rsplit("/", 1)[1])
    return None


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_client_generated_from_the_document_is_complete(service: str, tmp_path: Path) -> None:
    import json

    doc = SERVICES[service]().openapi()
    doc_path = tmp_path / "openapi.json"
    doc_path.write_text(json.dumps(doc))
    output = _generate(doc_path, tmp_path / "client")
    assert "warning" not in output.lower(), output
    generated = {p.stem: p.read_text() for p in (tmp_path / "client" / "api").rglob("*.py")}
    checked = 0
    for path_item in doc["paths"].values():
        for operation in path_item.values():
            model = _success_schema(operation)
            if model is None:
                continue
            source = generated[operation["operationId"]]
            returns = re.findall(r"def sync_detailed\([^)]*\)\s*->\s*Response\[([^\]]+)\]", source)
            assert returns and model in returns[0], (operation["operationId"], returns)
            checked += 1
    assert checked >= 5
