"""The events the template service emits (``tracseq.template.*`` on ``tracseq.templates``)."""

from __future__ import annotations

from typing import Any

from tracseq_kit.events import CloudEvent
from tracseq_kit.schemas import Template

TOPIC = "tracseq.templates"
SOURCE = "/template-service"


def template_event(kind: str, template: Template, actor: str, **extra: Any) -> CloudEvent[Any]:
    """``tracseq.template.<kind>`` about ``template`` (its id is the subject and the key),
    done by ``actor`` (the verified subject, in the ``actor`` extension)."""
    return CloudEvent[Any](
        source=SOURCE,
        type=f"tracseq.template.{kind}",
        subject=template.id,
        extensions={"actor": actor},
        data={
            "template_id": template.id,
            "name": template.name,
            "status": template.status,
            "version": template.version,
            **extra,
        },
    )
