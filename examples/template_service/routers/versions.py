"""``/api/templates/{id}/versions``: the published versions, frozen."""

from __future__ import annotations

from typing import Annotated

from examples.template_service import store
from examples.template_service.deps import READ, Postgres
from fastapi import APIRouter, HTTPException, Path

from tracseq_kit.schemas import Template
from tracseq_kit.service import problems

router = APIRouter(
    prefix="/api/templates/{template_id}/versions", tags=["versions"], dependencies=[READ]
)

Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("", response_model=list[Template], responses=problems(404))
async def list_versions(template_id: str, db: Postgres) -> list[Template]:
    """Every published version, oldest first."""
    if await store.get(db, template_id) is None:
        raise HTTPException(404, f"template {template_id!r} not found")
    return await store.versions(db, template_id)


@router.get("/{version}", response_model=Template, responses=problems(404))
async def get_version(template_id: str, version: Version, db: Postgres) -> Template:
    """Published version ``version``."""
    found = await store.version(db, template_id, version)
    if found is None:
        raise HTTPException(404, f"template {template_id!r} has no version {version}")
    return found
