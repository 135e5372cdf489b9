"""Pydantic models of the TracSeq APIs, shared by the services and the typed client.

Request bodies forbid unknown fields (a typo is a clear 422); responses ignore fields
they do not know, so an older client keeps working against a newer server.
"""

from tracseq_kit.schemas._submissions import SheetProblem, SubmissionReport
from tracseq_kit.schemas._templates import (
    CrossFieldRule,
    FieldDefinition,
    FieldRules,
    FieldType,
    Template,
    TemplateCategory,
    TemplateCreate,
    TemplateStatus,
    check_pattern,
)

__all__ = [
    "CrossFieldRule",
    "FieldDefinition",
    "FieldRules",
    "FieldType",
    "SheetProblem",
    "SubmissionReport",
    "Template",
    "TemplateCategory",
    "TemplateCreate",
    "TemplateStatus",
    "check_pattern",
]
