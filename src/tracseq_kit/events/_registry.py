"""EventRegistry: event types, their payload models by version, and upcasters."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from tracseq_kit._exceptions import ConfigurationError, EventEncodingError, UnknownEventTypeError
from tracseq_kit.events._cloudevent import CloudEvent

__all__ = ["EventRegistry", "Upcaster"]

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the JSON payload of the previous version into one of the next version."""

_REQUIRED = ("id", "source", "specversion", "type")


@dataclass(frozen=True, slots=True)
class _Version:
    number: int
    model: type[Any]
    upcast: Upcaster | None  # from the previous registered version to this one


class EventRegistry:
    """Event types (``tracseq.sample.received``) → payload models, by version.

    A type starts at version 1; a changed model is registered as the next version with
    an ``upcast`` function that turns a payload of the previous version (JSON values)
    into one of the new version. Reading an event (:meth:`parse`, hence
    :func:`from_kafka` and the consumer) finds its version in ``dataschema``
    (``urn:tracseq:event:<type>:v<n>``, see :meth:`dataschema`), validates the payload
    with that version's model, upcasts it step by step and returns the *current* model
    (with the current ``dataschema``): handlers and replays of stored old events only
    ever see the current model. An event without such a ``dataschema`` (written before
    the type had versions) is read as the type's oldest registered version.

    :meth:`event` builds an event with its ``dataschema`` set. An unregistered type
    raises :class:`~tracseq_kit.UnknownEventTypeError` unless ``allow_unknown=True``
    (then ``data`` stays plain JSON values); so does a version newer than the registry
    knows (deploy the new reader first; the consumer dead-letters such events, to be
    re-driven after the upgrade).
    """

    def __init__(self, *, schema_prefix: str = "urn:tracseq:event") -> None:
        if not schema_prefix or schema_prefix.endswith(":"):
            raise ConfigurationError("schema_prefix must be non-empty, without a trailing ':'")
        self.schema_prefix = schema_prefix
        self._versions: dict[str, list[_Version]] = {}
        self._by_schema: dict[str, tuple[str, int]] = {}
        self._pattern = re.compile(re.escape(schema_prefix) + r":(.+):v(\d+)")

    # -- declaring --------------------------------------------------------------------

    def register(
        self,
        event_type: str,
        model: type[Any],
        *,
        version: int = 1,
        upcast: Upcaster | None = None,
    ) -> None:
        """Register ``model`` as ``version`` of ``event_type``.

        Versions are registered oldest first; ``upcast`` turns a payload of the previous
        registered version into this one (without it the payload is passed on as it
        is, which suits additions with defaults: ``check_compatibility`` verifies that).
        Registering the same model again is a no-op. Raises
        :class:`~tracseq_kit.ConfigurationError` for another model under a taken
        version, a version not above the latest, or an ``upcast`` on a first version.
        """
        if version < 1:
            raise ConfigurationError(f"{event_type}: versions start at 1, got {version}")
        versions = self._versions.setdefault(event_type, [])
        for existing in versions:
            if existing.number == version:
                if existing.model is model:
                    return
                raise ConfigurationError(
                    f"event type {event_type!r} version {version} is already registered"
                )
        if versions and version < versions[-1].number:
            raise ConfigurationError(
                f"{event_type}: register versions oldest first ({version} after "
                f"{versions[-1].number})"
            )
        if not versions and upcast is not None:
            raise ConfigurationError(
                f"{event_type} version {version} is its first: there is nothing to upcast from"
            )
        versions.append(_Version(version, model, upcast))
        self._by_schema[self.dataschema(event_type, version)] = (event_type, version)

    # -- looking up -------------------------------------------------------------------

    def __contains__(self, event_type: object) -> bool:
        return event_type in self._versions

    def __len__(self) -> int:
        return len(self._versions)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._versions))

    def versions(self, event_type: str) -> list[int]:
        """The registered versions of ``event_type``, oldest first (empty if unknown)."""
        return [v.number for v in self._versions.get(event_type, ())]

    def has_upcaster(self, event_type: str, version: int) -> bool:
        """Whether ``version`` of ``event_type`` was registered with an ``upcast``."""
        return any(
            v.number == version and v.upcast is not None for v in self._versions.get(event_type, ())
        )

    def model_for(self, event_type: str, version: int | None = None) -> type[Any] | None:
        """The model of ``version`` (default: the current one), if registered."""
        versions = self._versions.get(event_type)
        if not versions:
            return None
        if version is None:
            return versions[-1].model
        for v in versions:
            if v.number == version:
                return v.model
        return None

    def dataschema(self, event_type: str, version: int | None = None) -> str:
        """The ``dataschema`` URN of a type's version (default: its current version)."""
        if version is None:
            versions = self._versions.get(event_type)
            if not versions:
                raise UnknownEventTypeError(f"no payload model is registered for {event_type!r}")
            version = versions[-1].number
        return f"{self.schema_prefix}:{event_type}:v{version}"

    def version_of(self, event_type: str, dataschema: str | None) -> int:
        """The version an event of ``event_type`` with this ``dataschema`` was written in.

        Without a URN of this registry: the type's oldest registered version. Raises
        :class:`~tracseq_kit.UnknownEventTypeError` for an unregistered type.
        """
        versions = self._versions.get(event_type)
        if not versions:
            raise UnknownEventTypeError(f"no payload model is registered for {event_type!r}")
        if dataschema is not None:
            known = self._by_schema.get(dataschema)
            if known is not None and known[0] == event_type:
                return known[1]
            match = self._pattern.fullmatch(dataschema)
            if match is not None and match.group(1) == event_type:
                return int(match.group(2))
        return versions[0].number

    # -- building and reading ---------------------------------------------------------

    def event(
        self,
        event_type: str,
        data: Any,
        *,
        source: str,
        subject: str | None = None,
        **attributes: Any,
    ) -> CloudEvent[Any]:
        """A new event of ``event_type`` whose ``dataschema`` names the current version.

        ``data`` may be an instance of the current model or its fields as a dict.
        Raises :class:`~tracseq_kit.UnknownEventTypeError` for an unregistered type and
        pydantic's ``ValidationError`` for invalid data or attributes.
        """
        model = self.model_for(event_type)
        if model is None:
            raise UnknownEventTypeError(f"no payload model is registered for {event_type!r}")
        cls = _event_class(model)
        return cls(
            type=event_type,
            source=source,
            subject=subject,
            dataschema=self.dataschema(event_type),
            data=data,
            **attributes,
        )

    def upcast(self, event_type: str, payload: Any, *, from_version: int) -> Any:
        """``payload`` of ``from_version`` validated, then upcast to the current model.

        Raises :class:`~tracseq_kit.EventEncodingError` when the payload does not fit its
        version's model, an upcaster fails, or the result does not fit the current
        model; :class:`~tracseq_kit.UnknownEventTypeError` for an unknown type or
        version.
        """
        versions = self._versions.get(event_type)
        if not versions:
            raise UnknownEventTypeError(f"no payload model is registered for {event_type!r}")
        numbers = [v.number for v in versions]
        if from_version not in numbers:
            newest = numbers[-1]
            why = (
                f"newer than this reader knows (up to {newest}): upgrade it"
                if from_version > newest
                else f"not registered (known: {numbers})"
            )
            raise UnknownEventTypeError(f"{event_type} version {from_version} is {why}")
        start = numbers.index(from_version)
        try:
            value = _validate(versions[start].model, payload)
            if start == len(versions) - 1:
                return value
            data = _as_json(value)
            for step in versions[start + 1 :]:
                if step.upcast is not None:
                    data = step.upcast(data)
            return _validate(versions[-1].model, data)
        except ValidationError as exc:
            raise EventEncodingError(
                f"{event_type} version {from_version} payload does not read: {exc}"
            ) from exc
        except (EventEncodingError, UnknownEventTypeError):
            raise
        except Exception as exc:
            raise EventEncodingError(
                f"upcasting {event_type} from version {from_version} failed: {exc!r}"
            ) from exc

    def parse(self, attributes: dict[str, Any], *, allow_unknown: bool = False) -> CloudEvent[Any]:
        """Validate ``attributes`` (context attributes, ``data``, ``extensions``).

        The payload of a registered type comes back as the current model (upcast from
        the version named by ``dataschema``). Raises
        :class:`~tracseq_kit.EventEncodingError` for invalid events (a required
        attribute missing, invalid values, a payload that does not fit) and
        :class:`~tracseq_kit.UnknownEventTypeError` for unregistered types or versions.
        """
        missing = [name for name in _REQUIRED if name not in attributes]
        if missing:
            raise EventEncodingError(f"not a CloudEvent: no {', '.join(missing)}")
        # What was not sent stays absent: no invented time or content type.
        attributes = {"time": None, "datacontenttype": None, **attributes}
        event_type = attributes["type"]
        versions = self._versions.get(event_type) if isinstance(event_type, str) else None
        if versions is None:
            if not allow_unknown:
                raise UnknownEventTypeError(f"no payload model is registered for {event_type!r}")
            return _validate_event(_ANY_EVENT, attributes)
        current = versions[-1]
        dataschema = attributes.get("dataschema")
        version = self.version_of(event_type, dataschema if isinstance(dataschema, str) else None)
        cls = _event_class(current.model)
        if version == current.number:
            return _validate_event(cls, attributes)
        envelope = _validate_event(_ANY_EVENT, {**attributes, "data": None})
        data = attributes.get("data")
        upcast = None if data is None else self.upcast(event_type, data, from_version=version)
        return cls.model_construct(
            **{
                **dict(envelope),
                "dataschema": self.dataschema(event_type),
                "data": upcast,
            }
        )


_ANY_EVENT: type[CloudEvent[Any]] = CloudEvent[Any]
_EVENT_CLASSES: dict[type[Any], type[CloudEvent[Any]]] = {}


def _event_class(model: type[Any]) -> type[CloudEvent[Any]]:
    """``CloudEvent[model]``, looked up once (subscripting a generic model is slow)."""
    cls = _EVENT_CLASSES.get(model)
    if cls is None:
        cls = _EVENT_CLASSES[model] = CloudEvent[model]  # type: ignore[valid-type]
    return cls


def _validate(model: type[Any], payload: Any) -> Any:
    if isinstance(payload, model):
        return payload
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.model_validate(payload)
    from pydantic import TypeAdapter

    return TypeAdapter(model).validate_python(payload)


def _as_json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def _validate_event(cls: type[CloudEvent[Any]], attributes: dict[str, Any]) -> CloudEvent[Any]:
    try:
        return cls.model_validate(attributes)
    except ValidationError as exc:
        raise EventEncodingError(f"invalid CloudEvent: {exc}") from exc
