"""What the routers ask for: the database pool and the settings."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from examples.event_service.settings import EventServiceSettings
from fastapi import Depends, Request

from tracseq_kit.service import resource

Postgres = Annotated[asyncpg.Pool, resource("postgres")]
"""The service's connection pool (opened by ``create_service``)."""


def _settings(request: Request) -> EventServiceSettings:
    settings: EventServiceSettings = request.app.state.settings
    return settings


Settings = Annotated[EventServiceSettings, Depends(_settings)]
