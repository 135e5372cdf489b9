"""API models of the template service: templates, fields, rules, versions."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from tracseq_kit.schemas._base import ResponseModel

__all__ = [
    "CrossFieldRule",
    "FieldDefinition",
    "FieldRules",
    "FieldType",
    "Template",
    "TemplateCategory",
    "TemplateCreate",
    "TemplatePage",
    "TemplateStatus",
    "TemplateUpdate",
    "check_pattern",
]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_MAX_PATTERN = 200
# A group holding a quantifier that is itself quantified, e.g. (a+)+ or (\w*)*: the
# classic shapes of catastrophic backtracking.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)[+*{]")
_PATTERN_SCHEMA: dict[str, Any] = {"maxLength": _MAX_PATTERN}  # a Python regular expression


class _Request(BaseModel):
    """Request bodies reject unknown fields, so a typo is a clear 422. Booleans and
    integers are strict: ``0`` is not ``false``, ``"3"`` not ``3`` (the schema says so)."""

    model_config = ConfigDict(extra="forbid")


_Response = ResponseModel


class FieldType(StrEnum):
    """What a sheet column holds."""

    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    ENUM = "enum"
    MULTI_ENUM = "multi_enum"
    EMAIL = "email"
    URL = "url"
    BARCODE = "barcode"


class TemplateCategory(StrEnum):
    """What a template is for."""

    SUBMISSION = "submission"
    QC = "qc"
    PROTOCOL = "protocol"
    REPORT = "report"
    OTHER = "other"


class TemplateStatus(StrEnum):
    """A template's life cycle: draft → published → archived or deprecated."""

    DRAFT = "draft"
    PUBLISHED = "published"
    ARCHIVED = "archived"
    DEPRECATED = "deprecated"


def check_pattern(pattern: str) -> str:
    """Validate a user-supplied regular expression: it must compile, be at most 200
    characters, and have no nested quantifiers (catastrophic backtracking)."""
    if len(pattern) > _MAX_PATTERN:
        raise ValueError(f"pattern is longer than {_MAX_PATTERN} characters")
    if _NESTED_QUANTIFIER.search(pattern):
        raise ValueError("pattern nests quantifiers (like (a+)+), which can backtrack forever")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"pattern does not compile: {exc}") from None
    return pattern


class FieldRules(_Request):
    """Validation rules of one field; each is enforced on every cell."""

    min_length: StrictInt | None = Field(default=None, ge=0)
    max_length: StrictInt | None = Field(default=None, ge=1)
    pattern: str | None = Field(default=None, json_schema_extra=_PATTERN_SCHEMA)
    min_value: Decimal | None = None
    max_value: Decimal | None = None
    allowed_values: list[str] | None = None
    unique: StrictBool = False

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        return None if value is None else check_pattern(value)

    @model_validator(mode="after")
    def _ranges(self) -> FieldRules:
        if self.min_length is not None and self.max_length is not None:
            if self.min_length > self.max_length:
                raise ValueError("min_length is greater than max_length")
        if self.min_value is not None and self.max_value is not None:
            if self.min_value > self.max_value:
                raise ValueError("min_value is greater than max_value")
        return self


# What the validators below enforce, stated in the JSON Schema too, so that a client
# generator or a fuzzer knows it: enum fields need options, barcodes a pattern.
_TYPE_NEEDS: dict[str, Any] = {
    "allOf": [
        {
            "if": {"properties": {"type": {"enum": ["enum", "multi_enum"]}}, "required": ["type"]},
            "then": {"required": ["options"], "properties": {"options": {"minItems": 1}}},
        },
        {
            "if": {"properties": {"type": {"const": "barcode"}}, "required": ["type"]},
            "then": {"required": ["barcode_pattern"]},
        },
    ]
}


class FieldDefinition(_Request):
    """One column of a sample sheet.

    ``name`` is the machine name (lowercase, digits, underscores); the sheet header may
    use it or ``label``. ``options`` are required for enum and multi-enum fields,
    ``barcode_pattern`` for barcodes; ``unit`` documents a decimal's unit.
    """

    model_config = ConfigDict(extra="forbid", json_schema_extra=_TYPE_NEEDS)

    name: str = Field(json_schema_extra={"pattern": f"^{_NAME.pattern}$"})
    label: str = ""
    description: str = ""
    type: FieldType = FieldType.TEXT
    required: StrictBool = False
    order: StrictInt = 0
    default: str | int | float | bool | None = None
    """The value of an empty cell."""
    unit: str | None = None
    options: list[str] | None = None
    barcode_pattern: str | None = Field(default=None, json_schema_extra=_PATTERN_SCHEMA)
    rules: FieldRules = Field(default_factory=FieldRules)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(
                "must start with a lowercase letter and use only a-z, 0-9 and _ (max 63)"
            )
        return value

    @field_validator("barcode_pattern")
    @classmethod
    def _barcode(cls, value: str | None) -> str | None:
        return None if value is None else check_pattern(value)

    @model_validator(mode="after")
    def _consistent(self) -> FieldDefinition:
        if self.type in (FieldType.ENUM, FieldType.MULTI_ENUM) and not self.options:
            raise ValueError(f"{self.type.value} field {self.name!r} needs options")
        if self.type == FieldType.BARCODE and not self.barcode_pattern:
            raise ValueError(f"barcode field {self.name!r} needs barcode_pattern")
        if not self.label:
            self.label = self.name.replace("_", " ").capitalize()
        return self


class CrossFieldRule(_Request):
    """``then_required`` fields must be filled when ``when_field`` equals one of
    ``equals`` — e.g. concentration required when sample_type is DNA."""

    when_field: str
    equals: list[str] = Field(min_length=1)
    then_required: list[str] = Field(min_length=1)


class TemplateCreate(_Request):
    """Body of ``POST /api/templates``."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    category: TemplateCategory = TemplateCategory.SUBMISSION
    tags: list[str] = Field(default_factory=list)
    fields: list[FieldDefinition] = Field(default_factory=list)
    cross_field_rules: list[CrossFieldRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> TemplateCreate:
        names = [f.name for f in self.fields]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"duplicated field names: {duplicated}")
        known = set(names)
        for i, rule in enumerate(self.cross_field_rules):
            for ref in (rule.when_field, *rule.then_required):
                if ref not in known:
                    raise ValueError(f"cross_field_rules[{i}] refers to unknown field {ref!r}")
        return self


class Template(_Response):
    """A template as the service returns it."""

    id: str
    name: str
    description: str = ""
    category: TemplateCategory
    tags: list[str] = Field(default_factory=list)
    status: TemplateStatus
    version: int = 0
    fields: list[FieldDefinition] = Field(default_factory=list)
    cross_field_rules: list[CrossFieldRule] = Field(default_factory=list)
    created_by: str | None = None
    created_at: datetime | None = None
    updated_by: str | None = None
    updated_at: datetime | None = None


class TemplateUpdate(_Request):
    """Body of ``PATCH /api/templates/{id}``: only the given fields change; on a published
    template the change starts the draft of its next version. ``null`` clears
    ``description``, ``tags``, ``fields`` or ``cross_field_rules``; ``name`` and
    ``category`` cannot be null."""

    # Omitted: unchanged. ``name`` and ``category`` cannot be cleared: their schema has
    # no null (a null is a 422); an explicit null clears the optional parts.
    name: str = Field(default=None, min_length=1, max_length=200)  # type: ignore[assignment]
    category: TemplateCategory = Field(default=None)  # type: ignore[assignment]
    description: str | None = None
    """``null`` clears it (to "")."""
    tags: list[str] | None = None
    """``null`` clears them."""
    fields: list[FieldDefinition] | None = None
    """``null`` clears them (a template without fields cannot be published)."""
    cross_field_rules: list[CrossFieldRule] | None = None
    """``null`` clears them."""


class TemplatePage(_Response):
    """One page of templates; pass ``next_cursor`` back as ``cursor`` for the next."""

    items: list[Template]
    next_cursor: str | None = None
