"""What the routers ask for: the database pool, the verified caller and the settings."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from examples.event_service.settings import EventServiceSettings
from fastapi import Depends, Request

from tracseq_kit.identity import Identity
from tracseq_kit.service import require_scopes, resource

Postgres = Annotated[asyncpg.Pool, resource("postgres")]
"""The service's connection pool (opened by ``create_service``)."""

READ = require_scopes("events:read")
"""For operations that only read (``dependencies=[READ]``): 401/403 otherwise."""

Writer = Annotated[Identity, require_scopes("events:write")]
"""The verified caller, holding ``events:write``: recorded as who published an event
(its ``actor`` extension) or started a replay."""


def _settings(request: Request) -> EventServiceSettings:
    settings: EventServiceSettings = request.app.state.settings
    return settings


Settings = Annotated[EventServiceSettings, Depends(_settings)]
