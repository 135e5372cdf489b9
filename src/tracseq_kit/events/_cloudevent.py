"""CloudEvents 1.0 envelope, generic over a pydantic payload model, and a type registry."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tracseq_kit._exceptions import ConfigurationError, EventEncodingError, UnknownEventTypeError
from tracseq_kit.schemas._base import IsoDateTime

__all__ = ["CloudEvent", "EventRegistry"]

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
_EXTENSION_NAME = re.compile(r"[a-z0-9]{1,20}")
ExtensionValue = str | int | bool


def _now() -> datetime:
    return datetime.now(UTC)


class CloudEvent(BaseModel, Generic[DataT]):
    """A CloudEvents 1.0 event whose ``data`` is a ``DataT`` (e.g. a pydantic model).

    ``id`` defaults to a random UUID and ``time`` to now (UTC). ``extensions`` holds
    extension attributes (lowercase letters and digits, at most 20 characters, values
    str, int or bool); ``partitionkey`` there overrides the Kafka key. Invalid
    attributes raise pydantic's ``ValidationError`` at construction.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: str(uuid.uuid4()), min_length=1)
    source: str = Field(min_length=1)
    specversion: Literal["1.0"] = "1.0"
    type: str = Field(min_length=1)
    subject: str | None = None
    time: IsoDateTime | None = Field(default_factory=_now)
    datacontenttype: str | None = "application/json"
    dataschema: str | None = None
    data: DataT | None = None
    extensions: dict[str, ExtensionValue] = Field(default_factory=dict)

    @field_validator("extensions")
    @classmethod
    def _extension_names(cls, value: dict[str, ExtensionValue]) -> dict[str, ExtensionValue]:
        for name in value:
            if not _EXTENSION_NAME.fullmatch(name) or name in _CONTEXT_ATTRIBUTES:
                raise ValueError(
                    f"extension attribute {name!r} must be 1-20 lowercase letters or digits "
                    "and not a context attribute name"
                )
        return value

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("time must carry a time zone (RFC 3339)")
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


def _jsonable(value: Any) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(Any).dump_python(value, mode="json")


class EventRegistry:
    """Maps event types (``tracseq.template.published``) to payload models.

    :meth:`parse` turns raw attributes into a ``CloudEvent[Model]`` with typed data;
    an unregistered type raises :class:`~tracseq_kit.UnknownEventTypeError` unless
    ``allow_unknown=True`` (then ``data`` stays plain JSON values).
    """

    def __init__(self) -> None:
        self._models: dict[str, type[Any]] = {}

    def register(self, event_type: str, model: type[Any]) -> None:
        """Register ``model`` for ``event_type``; re-registering another model fails."""
        existing = self._models.get(event_type)
        if existing is not None and existing is not model:
            raise ConfigurationError(f"event type {event_type!r} is already registered")
        self._models[event_type] = model

    def model_for(self, event_type: str) -> type[Any] | None:
        """The model registered for ``event_type``, if any."""
        return self._models.get(event_type)

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._models

    def parse(self, attributes: dict[str, Any], *, allow_unknown: bool = False) -> CloudEvent[Any]:
        """Validate ``attributes`` (context attributes, ``data``, ``extensions``).

        Raises :class:`~tracseq_kit.EventEncodingError` for invalid events and
        :class:`~tracseq_kit.UnknownEventTypeError` for unregistered types.
        """
        event_type = attributes.get("type")
        model = self._models.get(str(event_type)) if event_type is not None else None
        if model is None and not allow_unknown:
            raise UnknownEventTypeError(f"no payload model is registered for {event_type!r}")
        cls: type[CloudEvent[Any]] = CloudEvent[model] if model is not None else CloudEvent[Any]  # type: ignore[valid-type]
        try:
            return cls.model_validate(attributes)
        except ValidationError as exc:
            raise EventEncodingError(f"invalid CloudEvent: {exc}") from exc
