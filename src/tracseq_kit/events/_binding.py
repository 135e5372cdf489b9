"""The CloudEvents Kafka protocol binding: binary and structured content modes.

Checked against the official CloudEvents SDK (``cloudevents.v1.kafka``) by the
conformance tests in ``tests/events/test_conformance.py``. Deliberate differences:

- structured mode sends ``content-type: application/cloudevents+json; charset=utf-8``
  as the binding requires (the SDK sends the event's ``datacontenttype`` there); both
  forms are read;
- an event without data and without key has an empty value (Kafka needs a key or a
  value), which the kit reads as "no data" (the SDK's default data reader fails on it);
- on reading, the Kafka key becomes the ``partitionkey`` extension only when it is not
  the event's subject (the kit's default key), so the kit's own events round-trip
  unchanged; the SDK always adds it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from tracseq_kit._exceptions import EventEncodingError
from tracseq_kit.events._cloudevent import CloudEvent
from tracseq_kit.events._registry import EventRegistry

__all__ = ["ContentMode", "KafkaMessage", "from_kafka", "is_json_content_type", "to_kafka"]

ContentMode = Literal["binary", "structured"]
Headers = list[tuple[str, bytes]]

STRUCTURED = "application/cloudevents+json"
_CLOUDEVENTS_MEDIA = "application/cloudevents"
_ATTRS = ("id", "source", "specversion", "type", "subject", "time", "dataschema")
_ATTR_SET = frozenset(_ATTRS)
_ALL_ATTRS = frozenset((*_ATTRS, "datacontenttype"))
_STRUCTURED_HEADER = [("content-type", f"{STRUCTURED}; charset=utf-8".encode())]
# JSON media types: application/json, text/json and any +json suffix (as the SDK's
# JSON format decides it); no datacontenttype means JSON too.
_JSON_TYPE = re.compile(r"^(application|text)/([a-z0-9!#$&^_.+-]+\+)?json$")


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


def is_json_content_type(content_type: str | None) -> bool:
    """True when ``datacontenttype`` means JSON data (absent counts as JSON)."""
    if not content_type:
        return True
    known = _JSON_TYPES.get(content_type)
    if known is None:
        media = content_type.split(";", 1)[0].strip().lower()
        known = bool(_JSON_TYPE.match(media))
        if len(_JSON_TYPES) < 256:  # a few content types recur: remember them
            _JSON_TYPES[content_type] = known
    return known


_JSON_TYPES: dict[str, bool] = {}


def to_kafka(event: CloudEvent[Any], *, mode: ContentMode = "binary") -> KafkaMessage:
    """Encode ``event``.

    Binary mode: attributes in ``ce_*`` headers, data as-is in the value (JSON for JSON
    content types, UTF-8 text for a ``str`` of another type, ``bytes`` unchanged),
    ``content-type`` from ``datacontenttype``. Structured mode: the whole event as JSON
    with ``content-type: application/cloudevents+json``; ``bytes`` data goes into
    ``data_base64``. The key is the event's partition key (``partitionkey`` extension,
    else the subject); in binary mode ``partitionkey`` travels only as the key.
    """
    key = event.partition_key.encode() if event.partition_key is not None else None
    if mode == "structured":
        return KafkaMessage(key, _structured_body(event), list(_STRUCTURED_HEADER))
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
        if name == "partitionkey":
            continue  # the Kafka key carries it
        text = ("true" if ext else "false") if isinstance(ext, bool) else str(ext)
        headers.append((f"ce_{name}", text.encode()))
    if event.datacontenttype:
        headers.append(("content-type", event.datacontenttype.encode()))
    value = _data_bytes(event)
    if value is None and key is None:
        value = b""  # Kafka needs a key or a value; an empty value means "no data"
    return KafkaMessage(key, value, headers)


def _data_bytes(event: CloudEvent[Any]) -> bytes | None:
    data = event.data
    if data is None:
        return None
    if isinstance(data, bytes):
        return data
    if isinstance(data, BaseModel):
        return data.model_dump_json().encode()  # pydantic-core's encoder: fast
    if isinstance(data, str) and not is_json_content_type(event.datacontenttype):
        return data.encode()
    return json.dumps(event.data_json(), separators=(",", ":")).encode()


def _structured_body(event: CloudEvent[Any]) -> bytes:
    doc: dict[str, Any] = {}
    for name in (*_ATTRS, "datacontenttype"):
        value = getattr(event, name)
        if value is not None:
            doc[name] = _rfc3339(value) if isinstance(value, datetime) else value
    doc.update(event.extensions)
    data = event.data
    if isinstance(data, bytes):
        doc["data_base64"] = base64.b64encode(data).decode("ascii")
    elif data is not None:
        doc["data"] = event.data_json()
    return json.dumps(doc, separators=(",", ":")).encode()


def from_kafka(
    message: KafkaMessage, registry: EventRegistry | None = None, *, allow_unknown: bool = False
) -> CloudEvent[Any]:
    """Decode a message in either mode; typed data when ``registry`` knows the type.

    Structured mode is recognised by a ``content-type`` of ``application/cloudevents...``
    or, with no ``ce_*`` header, by a JSON object body with ``specversion`` (what the
    official SDK sends). Binary data of a JSON content type is parsed as JSON; data of
    any other type stays ``bytes`` (``data_base64`` in structured mode too).

    Raises :class:`~tracseq_kit.EventEncodingError` for a message that is not a valid
    CloudEvent (a required attribute missing, a non-RFC 3339 time, header values that
    are not UTF-8, both ``data`` and ``data_base64``, another event format...) and
    :class:`~tracseq_kit.UnknownEventTypeError` for an unregistered type (unless
    ``allow_unknown`` or no registry is given).
    """
    registry = registry if registry is not None else _NO_TYPES
    unknown_ok = allow_unknown or not registry
    raw_type: bytes | None = None
    attributes_in_headers: list[tuple[str, bytes]] = []
    for name, raw in message.headers:  # one pass: the hot path of every consumer
        lower = name.lower()
        if lower == "content-type":
            raw_type = raw
        elif lower.startswith("ce_"):
            attributes_in_headers.append((lower[3:], raw))
    try:
        content_type = bytes(raw_type or b"").decode("utf-8").strip()
    except UnicodeDecodeError:
        raise EventEncodingError("the content-type header is not UTF-8") from None
    lowered = content_type.lower()
    if lowered.startswith(_CLOUDEVENTS_MEDIA):
        if lowered.split(";", 1)[0].strip() not in (STRUCTURED, _CLOUDEVENTS_MEDIA):
            raise EventEncodingError(
                f"unsupported CloudEvents event format {content_type!r}: only JSON is read"
            )
        attributes = _structured(message, header_content_type=None)
    elif not attributes_in_headers and _looks_structured(message.value):
        attributes = _structured(message, header_content_type=content_type or None)
    else:
        header_type = content_type if raw_type is not None else None
        attributes = _binary(message, attributes_in_headers, header_type)
    return registry.parse(attributes, allow_unknown=unknown_ok)


def _looks_structured(value: bytes | None) -> bool:
    if not value or value[:1] != b"{":
        return False
    try:
        doc = json.loads(value)
    except ValueError:
        return False
    return isinstance(doc, dict) and "specversion" in doc


_NO_TYPES = EventRegistry()  # no registry given: every type is read untyped


def _structured(message: KafkaMessage, *, header_content_type: str | None) -> dict[str, Any]:
    try:
        doc = json.loads(message.value or b"")
    except ValueError as exc:
        raise EventEncodingError(f"structured CloudEvent is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise EventEncodingError("structured CloudEvent must be a JSON object")
    doc = {k: v for k, v in doc.items() if v is not None}  # JSON null: the attribute is absent
    if "data" in doc and "data_base64" in doc:
        raise EventEncodingError("a CloudEvent has data or data_base64, not both")
    attributes: dict[str, Any] = {k: doc[k] for k in _ALL_ATTRS if k in doc}
    attributes.setdefault("datacontenttype", header_content_type)
    if "data_base64" in doc:
        encoded = doc["data_base64"]
        if not isinstance(encoded, str):
            raise EventEncodingError("data_base64 must be a base64 string")
        try:
            attributes["data"] = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise EventEncodingError(f"data_base64 is not base64: {exc}") from exc
    elif "data" in doc:
        attributes["data"] = doc["data"]
    extensions = {k: v for k, v in doc.items() if k not in _ALL_ATTRS and k not in _DATA}
    attributes["extensions"] = _with_key(extensions, message.key, doc.get("subject"))
    return attributes


_DATA = frozenset(("data", "data_base64"))


def _binary(
    message: KafkaMessage, headers: list[tuple[str, bytes]], content_type: str | None
) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    extensions: dict[str, Any] = {}
    for attr, raw in headers:
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise EventEncodingError(f"header 'ce_{attr}' is not UTF-8") from None
        if attr in _ATTR_SET:
            attrs[attr] = text
        else:
            extensions[attr] = text
    if "specversion" not in attrs:
        raise EventEncodingError("not a CloudEvent: no ce_specversion header")
    # An empty content-type header is a present but empty datacontenttype: invalid.
    attrs["datacontenttype"] = content_type
    attrs["extensions"] = _with_key(extensions, message.key, attrs.get("subject"))
    if message.value:  # None or empty: the event has no data
        if not is_json_content_type(content_type):
            attrs["data"] = bytes(message.value)
        else:
            try:  # JSON is UTF-8 (RFC 8259): decoding first skips json's encoding sniffing
                attrs["data"] = json.loads(bytes(message.value).decode("utf-8"))
            except ValueError as exc:  # UnicodeDecodeError included
                raise EventEncodingError(f"event data is not JSON: {exc}") from exc
    return attrs


def _with_key(extensions: dict[str, Any], key: bytes | None, subject: object) -> dict[str, Any]:
    """The Kafka key as ``partitionkey``, unless it is the subject (the default key)."""
    if key is None or "partitionkey" in extensions:
        return extensions
    try:
        text = bytes(key).decode("utf-8")
    except UnicodeDecodeError:
        return extensions  # a binary key is no partitionkey (a String attribute)
    if text != subject:
        extensions["partitionkey"] = text
    return extensions


def _rfc3339(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def headers_of(pairs: Sequence[tuple[str, bytes]] | None) -> Headers:
    """Normalise aiokafka's header tuples to a list."""
    return [(k, bytes(v)) for k, v in (pairs or ())]
