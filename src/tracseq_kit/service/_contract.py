"""The contract a service declares: every error status it answers, as problem+json.

A route names the problems it can answer beyond the common ones with one argument::

    @router.post("/api/templates/{template_id}/publish", responses=problems(404, 409))

``create_service`` declares the common ones on every operation (400, 422 with field
paths, 429, 500, 503, 413 where a body is accepted, 401 where a caller is needed and 403
where scopes are) and rewrites FastAPI's default
422 (``application/json``, ``HTTPValidationError``) into the problem document the service
really sends, so that a fuzzer checking status codes and content types, or a client
generator, can trust the document.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from tracseq_kit.asgi import PROBLEM_CONTENT_TYPE
from tracseq_kit.schemas import Problem

__all__ = ["COMMON_PROBLEMS", "install_contract", "problems"]

COMMON_PROBLEMS: tuple[int, ...] = (400, 422, 429, 500, 503)
"""Statuses any operation may answer: a malformed request, an invalid one, the gateway's
rate limit, a server fault, a dependency down."""

_REF = "#/components/schemas/Problem"
_BODY_METHODS = frozenset({"post", "put", "patch"})


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` declaring problem+json answers for ``statuses``.

    Pass it as a route's ``responses=`` (``problems(404, 409)``); the schema is
    :class:`tracseq_kit.schemas.Problem`. Raises ``ValueError`` for a status that is not
    an HTTP error status (400-599).
    """
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        if not 400 <= status <= 599:
            raise ValueError(f"{status} is not an error status (400-599)")
        out[status] = {
            "description": _phrase(status),
            "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": _REF}}},
        }
    return out


def install_contract(app: Any, *, common: Iterable[int] = COMMON_PROBLEMS) -> None:
    """Make ``app.openapi()`` declare problem responses (see the module docstring)."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    common_statuses = tuple(common)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema  # type: ignore[no-any-return]
        doc = generate()
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        _add_problem_schemas(schemas)
        for path_item in doc.get("paths", {}).values():
            for method, operation in path_item.items():
                if isinstance(operation, dict) and "responses" in operation:
                    _declare(operation, method, common_statuses)
        _no_nul_in_strings(doc)
        _list_scopes(doc)
        for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's, now unused
            if unused in schemas and not _referenced(doc, unused):
                del schemas[unused]
        app.openapi_schema = doc
        return doc

    app.openapi = openapi


def _declare(operation: dict[str, Any], method: str, common: tuple[int, ...]) -> None:
    responses: dict[str, Any] = operation["responses"]
    statuses = list(common)
    if method in _BODY_METHODS and "requestBody" in operation:
        statuses.append(413)
    security = operation.get("security") or []
    if security:  # needs a caller (401), and with scopes may find the wrong one (403)
        statuses.append(401)
        if any(scopes for requirement in security for scopes in requirement.values()):
            statuses.append(403)
    for status, response in problems(*statuses).items():
        existing = responses.get(str(status))
        if existing is None or _is_fastapi_validation_error(existing):
            responses[str(status)] = response
    # keep the statuses in order, as a reader scans them
    operation["responses"] = dict(sorted(responses.items(), key=lambda kv: kv[0]))


def _list_scopes(doc: dict[str, Any]) -> None:
    """Each OAuth2 scheme lists exactly the scopes this document's operations require."""
    schemes = doc.get("components", {}).get("securitySchemes", {})
    used: dict[str, set[str]] = {}
    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            for requirement in operation.get("security", []) if isinstance(operation, dict) else []:
                for name, scopes in requirement.items():
                    used.setdefault(name, set()).update(scopes)
    for name, scheme in schemes.items():
        if scheme.get("type") != "oauth2":
            continue
        for flow in scheme.get("flows", {}).values():
            flow["scopes"] = {
                s: f"Granted by the auth service: {s}." for s in sorted(used.get(name, ()))
            }


def _is_fastapi_validation_error(response: dict[str, Any]) -> bool:
    content = response.get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def _add_problem_schemas(schemas: dict[str, Any]) -> None:
    generated = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in generated.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas.setdefault("Problem", generated)


_NO_NUL = "^[^\\u0000]*$"


def _no_nul_in_strings(node: Any) -> None:
    """Every plain string in the contract is free of NUL: PostgreSQL stores none (text
    and jsonb alike), so a request carrying one cannot succeed, and the document says so
    instead of leaving a client to find out."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not {"pattern", "format", "enum", "const"} & set(node):
            node["pattern"] = _NO_NUL
        for value in node.values():
            _no_nul_in_strings(value)
    elif isinstance(node, list):
        for value in node:
            _no_nul_in_strings(value)


def _referenced(doc: dict[str, Any], name: str) -> bool:
    """Whether anything but the schema itself refers to ``components.schemas.name``."""
    schemas = doc["components"]["schemas"]
    others = {k: v for k, v in schemas.items() if k != name}
    text = json.dumps({**doc, "components": {**doc["components"], "schemas": others}})
    return f'"#/components/schemas/{name}"' in text


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
