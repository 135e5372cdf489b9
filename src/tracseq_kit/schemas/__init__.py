"""Pydantic models of the TracSeq APIs, shared by the services and the typed client.

Request bodies forbid unknown fields (a typo is a clear 422); responses ignore fields
they do not know, so an older client keeps working against a newer server.
"""

from tracseq_kit.schemas._base import IsoDateTime, ResponseModel
from tracseq_kit.schemas._events import (
    EventAccepted,
    EventPage,
    ReplayJob,
    ReplayRequest,
    StoredEvent,
    TypeCount,
)
from tracseq_kit.schemas._health import HealthStatus
from tracseq_kit.schemas._problems import FieldProblem, Problem
from tracseq_kit.schemas._submissions import SheetProblem, SubmissionReport
from tracseq_kit.schemas._templates import (
    CrossFieldRule,
    FieldDefinition,
    FieldRules,
    FieldType,
    Template,
    TemplateCategory,
    TemplateCreate,
    TemplatePage,
    TemplateStatus,
    TemplateUpdate,
    check_pattern,
)

__all__ = [
    "CrossFieldRule",
    "EventAccepted",
    "EventPage",
    "FieldDefinition",
    "FieldProblem",
    "FieldRules",
    "FieldType",
    "HealthStatus",
    "IsoDateTime",
    "Problem",
    "ReplayJob",
    "ReplayRequest",
    "ResponseModel",
    "SheetProblem",
    "StoredEvent",
    "SubmissionReport",
    "Template",
    "TemplateCategory",
    "TemplateCreate",
    "TemplatePage",
    "TemplateStatus",
    "TemplateUpdate",
    "TypeCount",
    "check_pattern",
]
