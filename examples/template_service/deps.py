"""What the routers ask for: the database pool, the acting user, the settings."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from examples.template_service.settings import TemplateServiceSettings
from fastapi import Depends, Header, Request

from tracseq_kit.service import resource

Postgres = Annotated[asyncpg.Pool, resource("postgres")]
"""The service's connection pool (opened by ``create_service``)."""

Actor = Annotated[str | None, Header(alias="x-tracseq-identity-subject")]
"""Who acts: the subject the gateway authenticated and forwarded."""


def _settings(request: Request) -> TemplateServiceSettings:
    settings: TemplateServiceSettings = request.app.state.settings
    return settings


Settings = Annotated[TemplateServiceSettings, Depends(_settings)]
