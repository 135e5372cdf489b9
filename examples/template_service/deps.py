"""What the routers ask for: the database pool, the verified caller, the settings."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from examples.template_service.settings import TemplateServiceSettings
from fastapi import Depends, Request

from tracseq_kit.identity import Identity
from tracseq_kit.service import require_scopes, resource

Postgres = Annotated[asyncpg.Pool, resource("postgres")]
"""The service's connection pool (opened by ``create_service``)."""

READ = require_scopes("templates:read")
"""For operations that only read (``dependencies=[READ]``): 401/403 otherwise."""

Reader = Annotated[Identity, READ]
"""The verified caller, holding ``templates:read``."""

Writer = Annotated[Identity, require_scopes("templates:write")]
"""The verified caller, holding ``templates:write``: its subject is recorded as who
created or changed a template, and as the ``actor`` of the event."""


def _settings(request: Request) -> TemplateServiceSettings:
    settings: TemplateServiceSettings = request.app.state.settings
    return settings


Settings = Annotated[TemplateServiceSettings, Depends(_settings)]
