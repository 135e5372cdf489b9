"""The CloudEvents 1.0 envelope, generic over a pydantic payload model."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from pydantic_core import to_json

__all__ = ["CloudEvent"]

DataT = TypeVar("DataT")

_CONTEXT_ATTRIBUTES = frozenset(
    {
        "id",
        "source",
        "specversion",
        "type",
        "subject",
        "time",
        "datacontenttype",
        "dataschema",
        "data",
        "data_base64",
    }
)
_EXTENSION_NAME = re.compile(r"[a-z0-9]+")
# RFC 3339 date-time (section 5.6), what the spec requires of ``time``.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
_INT32 = (-(2**31), 2**31 - 1)
ExtensionValue = str | int | bool


def _now() -> datetime:
    return datetime.now(UTC)


class CloudEvent(BaseModel, Generic[DataT]):
    """A CloudEvents 1.0 event whose ``data`` is a ``DataT`` (e.g. a pydantic model).

    ``id`` defaults to a random UUID and ``time`` to now (UTC). ``extensions`` holds
    extension attributes (names of lowercase letters and digits, values str, bool or a
    32-bit int); ``partitionkey`` there overrides the Kafka key. ``dataschema`` names the
    payload's schema and version (:meth:`EventRegistry.event` sets it). Invalid
    attributes (empty strings, a ``time`` that is not RFC 3339 or has no zone, ...)
    raise pydantic's ``ValidationError`` at construction.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1)
    source: str = Field(min_length=1)
    specversion: Literal["1.0"] = "1.0"
    type: str = Field(min_length=1)
    subject: str | None = Field(default=None, min_length=1)
    time: datetime | None = Field(default_factory=_now)
    datacontenttype: str | None = Field(default="application/json", min_length=1)
    dataschema: str | None = Field(default=None, min_length=1)
    data: DataT | None = None
    extensions: dict[str, ExtensionValue] = Field(default_factory=dict)

    @field_validator("extensions")
    @classmethod
    def _extension_names(cls, value: dict[str, ExtensionValue]) -> dict[str, ExtensionValue]:
        if not value:
            return value
        for name in value:
            if not _EXTENSION_NAME.fullmatch(name) or name in _CONTEXT_ATTRIBUTES:
                raise ValueError(
                    f"extension attribute {name!r} must be lowercase letters or digits "
                    "and not a context attribute name"
                )
        for name, ext in value.items():
            if isinstance(ext, int) and not isinstance(ext, bool):
                if not _INT32[0] <= ext <= _INT32[1]:
                    raise ValueError(f"extension {name!r}: a CloudEvents Integer is 32-bit")
        return value

    @field_validator("time", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        # One check before pydantic parses (an RFC 3339 string always has a zone).
        if isinstance(value, str):
            if not _RFC3339.fullmatch(value):
                raise ValueError(f"time must be an RFC 3339 date-time, got {value!r}")
        elif isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("time must carry a time zone (RFC 3339)")
        elif value is not None:
            raise ValueError("time must be an RFC 3339 string or a datetime")
        return value

    @property
    def partition_key(self) -> str | None:
        """The Kafka key: the ``partitionkey`` extension, else the subject."""
        explicit = self.extensions.get("partitionkey")
        return str(explicit) if explicit is not None else self.subject

    def data_json(self) -> Any:
        """``data`` as JSON-compatible values."""
        data = self.data
        if isinstance(data, BaseModel):
            return data.model_dump(mode="json")
        return _jsonable(data)

    def data_json_text(self) -> str | None:
        """``data`` as JSON text (None without data), e.g. for a ``jsonb`` column: one
        call into pydantic-core, several times faster than ``json.dumps(data_json())``.
        Raises pydantic-core's ``PydanticSerializationError`` for data JSON cannot hold
        (``bytes`` data, say)."""
        data = self.data
        if data is None:
            return None
        if isinstance(data, BaseModel):
            return data.model_dump_json()
        return to_json(data).decode()


_ANY: TypeAdapter[Any] = TypeAdapter(Any)


def _jsonable(value: Any) -> Any:
    return _ANY.dump_python(value, mode="json")
