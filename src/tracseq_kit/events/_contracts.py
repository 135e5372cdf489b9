"""Event contracts from an EventRegistry: JSON Schemas per type and version, a check
that a changed registry still reads stored events, and an AsyncAPI 3.0 document."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.events._registry import EventRegistry

__all__ = [
    "Incompatibility",
    "asyncapi_document",
    "check_compatibility",
    "json_schemas",
    "load_json_schemas",
    "write_json_schemas",
]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
TYPE_KEY = "x-tracseq-event-type"
VERSION_KEY = "x-tracseq-event-version"


def _schema_of(model: type[Any], *, ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.model_json_schema(ref_template=ref_template)
    return TypeAdapter(model).json_schema(ref_template=ref_template)


def json_schemas(registry: EventRegistry) -> dict[str, dict[str, Any]]:
    """The JSON Schema (draft 2020-12, from the pydantic models) of every registered type
    and version, keyed by its ``dataschema`` URN, which is also the schema's ``$id``.

    Each schema names its event type and version (``x-tracseq-event-type``,
    ``x-tracseq-event-version``): a folder of them is the baseline that
    :func:`check_compatibility` compares a later registry against.
    """
    out: dict[str, dict[str, Any]] = {}
    for event_type in registry:
        for version in registry.versions(event_type):
            model = registry.model_for(event_type, version)
            assert model is not None  # listed by versions()
            urn = registry.dataschema(event_type, version)
            schema = {
                "$schema": DIALECT,
                "$id": urn,
                TYPE_KEY: event_type,
                VERSION_KEY: version,
                **_schema_of(model),
            }
            out[urn] = schema
    return out


def _file_name(schema: Mapping[str, Any]) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(schema[TYPE_KEY]))
    return f"{safe}.v{schema[VERSION_KEY]}.schema.json"


def write_json_schemas(registry: EventRegistry, directory: str | Path) -> list[Path]:
    """Write :func:`json_schemas` into ``directory`` (created if missing), one
    ``<type>.v<version>.schema.json`` file each; returns the paths written."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for schema in json_schemas(registry).values():
        path = folder / _file_name(schema)
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


def load_json_schemas(source: str | Path) -> dict[str, dict[str, Any]]:
    """Schemas written by :func:`write_json_schemas` (a folder of ``*.json`` files) or
    the JSON object ``tracseq events schemas`` prints (URN → schema), keyed by URN.

    Raises :class:`~tracseq_kit.ConfigurationError` for a missing path, a file that is
    not JSON, or a schema without the event type and version keys.
    """
    path = Path(source)
    if not path.exists():
        raise ConfigurationError(f"no schema baseline at {str(source)!r}")
    found: list[dict[str, Any]] = []
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    for file in files:
        try:
            doc = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read schema file {file.name!r}: {exc}") from None
        if isinstance(doc, dict) and TYPE_KEY not in doc and path.is_file():
            found.extend(v for v in doc.values() if isinstance(v, dict))  # a bundle
        elif isinstance(doc, dict):
            found.append(doc)
    out: dict[str, dict[str, Any]] = {}
    for schema in found:
        if TYPE_KEY not in schema or VERSION_KEY not in schema:
            raise ConfigurationError(
                f"schema {schema.get('$id', '?')!r} has no {TYPE_KEY}/{VERSION_KEY}: "
                "export baselines with `tracseq events schemas`"
            )
        out[str(schema.get("$id") or _file_name(schema))] = schema
    if not out:
        raise ConfigurationError(f"no event schemas found in {str(source)!r}")
    return out


# -- compatibility -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """A change that would break reading stored events of ``event_type`` ``version``.

    ``path`` points into the payload (``$.sample.volume``); ``change`` is one of
    ``type removed``, ``version removed``, ``field removed``, ``field added as
    required``, ``field became required``, ``type changed``, ``values removed``,
    ``constraint narrowed``, ``extra fields rejected`` and ``no upcaster``.
    """

    event_type: str
    version: int
    path: str
    change: str
    detail: str

    def __str__(self) -> str:
        return f"{self.event_type} v{self.version} {self.path}: {self.change} ({self.detail})"


def check_compatibility(
    registry: EventRegistry, baseline: Mapping[str, Mapping[str, Any]]
) -> list[Incompatibility]:
    """What in ``registry`` would break readers of events stored under ``baseline``
    (:func:`json_schemas` of an earlier registry, e.g. :func:`load_json_schemas`).

    For each baseline type and version: the registry must still have them, and that
    version's current model must accept every payload the baseline schema allowed (no
    removed or newly required field, no type change other than integer → number, no
    enum value removed, no narrowed constraint). Between consecutive registered versions
    without an ``upcast``, the newer model must read the older payloads too. An empty
    list means stored events still read.
    """
    current = {(str(s[TYPE_KEY]), int(s[VERSION_KEY])): s for s in json_schemas(registry).values()}
    found: list[Incompatibility] = []
    for schema in sorted(baseline.values(), key=lambda s: (s[TYPE_KEY], s[VERSION_KEY])):
        event_type, version = str(schema[TYPE_KEY]), int(schema[VERSION_KEY])
        if event_type not in registry:
            found.append(
                Incompatibility(event_type, version, "$", "type removed", "no model reads it")
            )
            continue
        now = current.get((event_type, version))
        if now is None:
            found.append(
                Incompatibility(
                    event_type,
                    version,
                    "$",
                    "version removed",
                    f"registered versions: {registry.versions(event_type)}",
                )
            )
            continue
        for path, change, detail in _Compare(schema, now).run():
            found.append(Incompatibility(event_type, version, path, change, detail))
    for event_type in registry:
        versions = registry.versions(event_type)
        for older, newer in pairwise(versions):
            if registry.has_upcaster(event_type, newer):
                continue
            problems = _Compare(current[event_type, older], current[event_type, newer]).run()
            for path, change, detail in problems:
                found.append(
                    Incompatibility(
                        event_type,
                        older,
                        path,
                        "no upcaster",
                        f"v{newer} reads v{older} payloads as they are, but {change}: {detail}",
                    )
                )
    return found


_NARROWING_MIN = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")
_NARROWING_MAX = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")


class _Compare:
    """Does the new schema accept everything the old one did? (reader compatibility)"""

    def __init__(self, old_root: Mapping[str, Any], new_root: Mapping[str, Any]) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.problems: list[tuple[str, str, str]] = []

    def run(self) -> list[tuple[str, str, str]]:
        self.problems = self._accepts(self.old_root, self.new_root, "$", set())
        return self.problems

    def _resolve(self, schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
        seen = 0
        while "$ref" in schema and seen < 32:
            ref = str(schema["$ref"])
            if not ref.startswith("#/"):
                return schema  # an external reference: compared as it stands
            target: Any = root
            for part in ref[2:].split("/"):
                target = target.get(part, {}) if isinstance(target, Mapping) else {}
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            seen += 1
        return schema

    def _accepts(
        self, old: Any, new: Any, path: str, seen: set[tuple[int, int]]
    ) -> list[tuple[str, str, str]]:
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            if new is False and old is not False:
                return [(path, "type changed", "nothing is accepted any more")]
            return []
        marker = (id(old), id(new))
        if marker in seen:  # recursive models
            return []
        seen = seen | {marker}
        old = self._resolve(old, self.old_root)
        new = self._resolve(new, self.new_root)
        old_alts = old.get("anyOf") or old.get("oneOf")
        if old_alts:
            base = {k: v for k, v in old.items() if k not in ("anyOf", "oneOf")}
            problems: list[tuple[str, str, str]] = []
            for alt in old_alts:
                problems += self._accepts({**base, **alt}, new, path, seen)
            return problems
        new_alts = new.get("anyOf") or new.get("oneOf")
        if new_alts:
            base = {k: v for k, v in new.items() if k not in ("anyOf", "oneOf")}
            best: list[tuple[str, str, str]] | None = None
            for alt in new_alts:
                got = self._accepts(old, {**base, **alt}, path, seen)
                if not got:
                    return []
                if best is None or len(got) < len(best):
                    best = got
            return best or []
        return self._same_kind(old, new, path, seen)

    def _same_kind(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str, seen: set[Any]
    ) -> list[tuple[str, str, str]]:
        problems: list[tuple[str, str, str]] = []
        old_types, new_types = _types(old), _types(new)
        if new_types is not None:
            missing = set(old_types or _ALL_TYPES) - new_types
            if "number" in new_types:
                missing.discard("integer")
            if missing:
                detail = f"{_show(old_types)} -> {_show(new_types)}"
                return [(path, "type changed", detail)]
        old_values = _values(old)
        new_values = _values(new)
        if new_values is not None:
            if old_values is None:
                problems.append((path, "values removed", f"now only {new_values!r}"))
            else:
                gone = [v for v in old_values if v not in new_values]
                if gone:
                    problems.append((path, "values removed", f"{gone!r} no longer accepted"))
        for key in _NARROWING_MIN:
            if key in new and (key not in old or new[key] > old[key]):
                problems.append(
                    (path, "constraint narrowed", f"{key} {old.get(key)} -> {new[key]}")
                )
        for key in _NARROWING_MAX:
            if key in new and (key not in old or new[key] < old[key]):
                problems.append(
                    (path, "constraint narrowed", f"{key} {old.get(key)} -> {new[key]}")
                )
        for key in ("pattern", "format", "multipleOf"):
            if key in new and new.get(key) != old.get(key):
                problems.append(
                    (path, "constraint narrowed", f"{key} {old.get(key)!r} -> {new[key]!r}")
                )
        if "items" in old or "items" in new:
            problems += self._accepts(old.get("items", {}), new.get("items", {}), f"{path}[]", seen)
        if any(
            k in d for d in (old, new) for k in ("properties", "required", "additionalProperties")
        ):
            problems += self._object(old, new, path, seen)
        return problems

    def _object(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str, seen: set[Any]
    ) -> list[tuple[str, str, str]]:
        problems: list[tuple[str, str, str]] = []
        old_props: Mapping[str, Any] = old.get("properties", {})
        new_props: Mapping[str, Any] = new.get("properties", {})
        old_required = set(old.get("required", ()))
        new_required = set(new.get("required", ()))
        for name in sorted(old_props):
            where = f"{path}.{name}"
            if name not in new_props:
                problems.append(
                    (where, "field removed", "stored events carry it; readers would drop it")
                )
                continue
            problems += self._accepts(old_props[name], new_props[name], where, seen)
        for name in sorted(new_required - old_required):
            where = f"{path}.{name}"
            if name in old_props:
                problems.append((where, "field became required", "stored events may lack it"))
            else:
                problems.append(
                    (where, "field added as required", "stored events lack it; give a default")
                )
        if (
            new.get("additionalProperties") is False
            and old.get("additionalProperties") is not False
        ):
            problems.append((path, "extra fields rejected", "additionalProperties: false"))
        extra_old, extra_new = old.get("additionalProperties"), new.get("additionalProperties")
        if isinstance(extra_old, Mapping) and isinstance(extra_new, Mapping):
            problems += self._accepts(extra_old, extra_new, f"{path}.*", seen)
        return problems


_ALL_TYPES = frozenset({"null", "boolean", "integer", "number", "string", "array", "object"})


def _types(schema: Mapping[str, Any]) -> set[str] | None:
    declared = schema.get("type")
    if declared is None:
        if "const" in schema or "enum" in schema:
            return {_json_type(v) for v in _values(schema) or ()}
        return None
    return {declared} if isinstance(declared, str) else set(declared)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _values(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    if "enum" in schema:
        return list(schema["enum"])
    return None


def _show(types: set[str] | None) -> str:
    return "any" if types is None else "|".join(sorted(types))


# -- AsyncAPI ------------------------------------------------------------------------------


def asyncapi_document(
    registry: EventRegistry,
    *,
    title: str,
    version: str = "1.0.0",
    description: str | None = None,
    channels: Mapping[str, Iterable[str]] | None = None,
    servers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An AsyncAPI 3.0 document of the registry's events, as a dict (serve it as JSON).

    ``channels`` maps Kafka topics to the event types they carry (default: one channel
    ``events`` of unknown address with every type); ``servers`` maps names to
    ``host:port`` Kafka bootstrap addresses. Each registered version of a type is a
    message (``<type>.v<n>``) whose payload is its JSON Schema, with the CloudEvents
    binary-mode headers and the Kafka key; versions older than the current one are
    marked ``x-deprecated``. Raises :class:`~tracseq_kit.ConfigurationError` for a
    channel naming an unregistered type.
    """
    schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    by_type: dict[str, list[str]] = {}
    for event_type in registry:
        versions = registry.versions(event_type)
        for number in versions:
            message_id = _component(f"{event_type}.v{number}")
            model = registry.model_for(event_type, number)
            assert model is not None  # listed by versions()
            prefix = f"{message_id}."
            payload = _schema_of(model, ref_template=f"#/components/schemas/{prefix}{{model}}")
            for name, definition in payload.pop("$defs", {}).items():
                schemas[prefix + name] = definition
            schemas[message_id] = payload
            message: dict[str, Any] = {
                "name": event_type,
                "title": f"{event_type} (version {number})",
                "contentType": "application/json",
                "headers": _ce_headers(event_type, registry.dataschema(event_type, number)),
                "payload": {"$ref": f"#/components/schemas/{message_id}"},
                "bindings": {"kafka": {"key": {"type": "string"}, "bindingVersion": "0.5.0"}},
            }
            if number != versions[-1]:
                message["x-deprecated"] = True
            messages[message_id] = message
            by_type.setdefault(event_type, []).append(message_id)
    plan = (
        {"events": list(by_type)} if channels is None else {t: list(v) for t, v in channels.items()}
    )
    doc_channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic, types in plan.items():
        channel_id = _component(topic)
        refs: dict[str, Any] = {}
        for event_type in types:
            if event_type not in by_type:
                raise ConfigurationError(
                    f"channel {topic!r} names unregistered type {event_type!r}"
                )
            for message_id in by_type[event_type]:
                refs[message_id] = {"$ref": f"#/components/messages/{message_id}"}
        doc_channels[channel_id] = {
            "address": None if channels is None else topic,
            "messages": refs,
        }
        operations[f"publish.{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in refs],
        }
    info: dict[str, Any] = {"title": title, "version": version}
    if description:
        info["description"] = description
    doc: dict[str, Any] = {"asyncapi": "3.0.0", "info": info}
    if servers:
        doc["servers"] = {
            _component(name): {"host": host, "protocol": "kafka"} for name, host in servers.items()
        }
    doc.update(
        {
            "defaultContentType": "application/json",
            "channels": doc_channels,
            "operations": operations,
            "components": {"messages": messages, "schemas": schemas},
        }
    )
    return doc


def _component(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _ce_headers(event_type: str, dataschema: str) -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "type": "object",
        "required": ["ce_id", "ce_source", "ce_specversion", "ce_type"],
        "properties": {
            "ce_id": text,
            "ce_source": text,
            "ce_specversion": {"const": "1.0"},
            "ce_type": {"const": event_type},
            "ce_subject": text,
            "ce_time": {"type": "string", "format": "date-time"},
            "ce_dataschema": {"const": dataschema},
            "content-type": text,
        },
    }
