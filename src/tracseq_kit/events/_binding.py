"""The CloudEvents Kafka protocol binding: binary and structured content modes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from tracseq_kit._exceptions import EventEncodingError
from tracseq_kit.events._cloudevent import CloudEvent, EventRegistry

__all__ = ["ContentMode", "KafkaMessage", "from_kafka", "to_kafka"]

ContentMode = Literal["binary", "structured"]
Headers = list[tuple[str, bytes]]

STRUCTURED = "application/cloudevents+json"
_ATTRS = ("id", "source", "specversion", "type", "subject", "time", "dataschema")


@dataclass(frozen=True, slots=True)
class KafkaMessage:
    """What goes to or comes from Kafka: key, value and headers."""

    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)

    def header(self, name: str) -> bytes | None:
        """The last header called ``name`` (case-insensitive), if any."""
        lower = name.lower()
        for k, v in reversed(self.headers):
            if k.lower() == lower:
                return v
        return None


def to_kafka(event: CloudEvent[Any], *, mode: ContentMode = "binary") -> KafkaMessage:
    """Encode ``event``. Binary mode: attributes in ``ce_*`` headers, data in the value,
    ``content-type`` from ``datacontenttype``. Structured mode: the whole event as JSON
    with ``content-type: application/cloudevents+json``. The key is the event's
    partition key (``partitionkey`` extension, else subject)."""
    key = event.partition_key.encode() if event.partition_key is not None else None
    if mode == "structured":
        doc = _attributes(event)
        doc.update({k: v for k, v in event.extensions.items()})
        if event.data is not None:
            doc["data"] = event.data_json()
        body = json.dumps(doc, separators=(",", ":")).encode()
        return KafkaMessage(key, body, [("content-type", f"{STRUCTURED}; charset=utf-8".encode())])
    headers: Headers = [
        ("ce_id", event.id.encode()),
        ("ce_source", event.source.encode()),
        ("ce_specversion", b"1.0"),
        ("ce_type", event.type.encode()),
    ]
    if event.subject is not None:
        headers.append(("ce_subject", event.subject.encode()))
    if event.time is not None:
        headers.append(("ce_time", _rfc3339(event.time).encode()))
    if event.dataschema is not None:
        headers.append(("ce_dataschema", event.dataschema.encode()))
    for name, ext in event.extensions.items():
        text = ("true" if ext else "false") if isinstance(ext, bool) else str(ext)
        headers.append((f"ce_{name}", text.encode()))
    if event.datacontenttype:
        headers.append(("content-type", event.datacontenttype.encode()))
    value: bytes | None = None
    if event.data is not None:
        data = event.data
        if isinstance(data, bytes):
            value = data
        elif isinstance(data, BaseModel):
            value = data.model_dump_json().encode()  # pydantic-core's encoder: fast
        else:
            value = json.dumps(event.data_json(), separators=(",", ":")).encode()
    if value is None and key is None:
        value = b""  # Kafka needs a key or a value; an empty value means "no data"
    return KafkaMessage(key, value, headers)


def from_kafka(
    message: KafkaMessage, registry: EventRegistry | None = None, *, allow_unknown: bool = False
) -> CloudEvent[Any]:
    """Decode a message in either mode; typed data when ``registry`` knows the type.

    Raises :class:`~tracseq_kit.EventEncodingError` for a message that is not a valid
    CloudEvent and :class:`~tracseq_kit.UnknownEventTypeError` for an unregistered type
    (unless ``allow_unknown`` or no registry is given).
    """
    registry = registry if registry is not None else EventRegistry()
    unknown_ok = allow_unknown or not registry._models
    content_type = (message.header("content-type") or b"").decode("latin-1")
    if content_type.lower().startswith(STRUCTURED):
        try:
            doc = json.loads(message.value or b"")
        except ValueError as exc:
            raise EventEncodingError(f"structured CloudEvent is not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise EventEncodingError("structured CloudEvent must be a JSON object")
        fields = {k: v for k, v in doc.items() if k in (*_ATTRS, "datacontenttype", "data")}
        fields["extensions"] = {k: v for k, v in doc.items() if k not in fields}
        return registry.parse(fields, allow_unknown=unknown_ok)
    attrs: dict[str, Any] = {}
    extensions: dict[str, Any] = {}
    for name, raw in message.headers:
        lower = name.lower()
        if not lower.startswith("ce_"):
            continue
        attr = lower[3:]
        text = raw.decode("utf-8", errors="replace")
        if attr in _ATTRS:
            attrs[attr] = text
        else:
            extensions[attr] = text
    if "specversion" not in attrs:
        raise EventEncodingError("not a CloudEvent: no ce_specversion header")
    attrs["datacontenttype"] = content_type or None
    attrs["extensions"] = extensions
    if message.value:  # None or empty: the event has no data
        if content_type and "json" not in content_type.lower():
            attrs["data"] = message.value
        else:
            try:
                attrs["data"] = json.loads(message.value)
            except ValueError as exc:
                raise EventEncodingError(f"event data is not JSON: {exc}") from exc
    return registry.parse(attrs, allow_unknown=unknown_ok)


def _attributes(event: CloudEvent[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in (*_ATTRS, "datacontenttype"):
        value = getattr(event, name)
        if value is None:
            continue
        if isinstance(value, datetime):
            value = _rfc3339(value)
        out[name] = value
    return out


def _rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def headers_of(pairs: Sequence[tuple[str, bytes]] | None) -> Headers:
    """Normalise aiokafka's header tuples to a list."""
    return [(k, bytes(v)) for k, v in (pairs or ())]
