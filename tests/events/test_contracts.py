"""Versioned event contracts: upcasting on read, JSON Schemas, the compatibility check
(with a property test: no reported break means old payloads still read), AsyncAPI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError, create_model

from tracseq_kit import ConfigurationError, EventEncodingError, UnknownEventTypeError
from tracseq_kit.events import (
    CloudEvent,
    EventRegistry,
    asyncapi_document,
    check_compatibility,
    from_kafka,
    json_schemas,
    load_json_schemas,
    to_kafka,
    write_json_schemas,
)

TYPE = "tracseq.sample.received"


class ReceivedV1(BaseModel):
    sample_id: str
    volume: int  # microlitres, whole


class ReceivedV2(BaseModel):
    sample_id: str
    volume_ul: float
    site: str = "main"


class ReceivedV3(BaseModel):
    sample_id: str
    volume_ul: float
    site: str = "main"
    kind: Literal["DNA", "RNA"] | None = None


def v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    return {"sample_id": payload["sample_id"], "volume_ul": float(payload["volume"])}


def registry() -> EventRegistry:
    r = EventRegistry()
    r.register(TYPE, ReceivedV1)
    r.register(TYPE, ReceivedV2, version=2, upcast=v1_to_v2)
    r.register(TYPE, ReceivedV3, version=3)  # additions with defaults: no upcaster needed
    return r


def test_old_events_are_read_as_the_current_model() -> None:
    old = EventRegistry()
    old.register(TYPE, ReceivedV1)
    stored = old.event(TYPE, ReceivedV1(sample_id="S-1", volume=5), source="/lab")
    assert stored.dataschema == "urn:tracseq:event:tracseq.sample.received:v1"
    for mode in ("binary", "structured"):
        read = from_kafka(to_kafka(stored, mode=mode), registry())  # type: ignore[arg-type]
        assert read.data == ReceivedV3(sample_id="S-1", volume_ul=5.0)
        assert read.dataschema == "urn:tracseq:event:tracseq.sample.received:v3"
        assert read.id == stored.id and read.time == stored.time


def test_events_from_before_versions_read_as_version_one_and_current_ones_directly() -> None:
    legacy = CloudEvent[Any](source="/lab", type=TYPE, data={"sample_id": "S", "volume": 2})
    assert from_kafka(to_kafka(legacy), registry()).data.volume_ul == 2.0  # type: ignore[union-attr]
    current = registry().event(TYPE, {"sample_id": "S", "volume_ul": 1.5}, source="/lab")
    assert from_kafka(to_kafka(current), registry()).data == ReceivedV3(
        sample_id="S", volume_ul=1.5
    )


def test_reading_fails_clearly() -> None:
    newer = CloudEvent[Any](
        source="/lab", type=TYPE, dataschema=f"urn:tracseq:event:{TYPE}:v9", data={}
    )
    with pytest.raises(UnknownEventTypeError, match="newer than this reader"):
        from_kafka(to_kafka(newer), registry())
    bad = CloudEvent[Any](source="/lab", type=TYPE, data={"sample_id": "S"})  # v1 w/o volume
    with pytest.raises(EventEncodingError, match="version 1 payload"):
        from_kafka(to_kafka(bad), registry())

    def broken(payload: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("volume")

    r = EventRegistry()
    r.register(TYPE, ReceivedV1)
    r.register(TYPE, ReceivedV2, version=2, upcast=broken)
    with pytest.raises(EventEncodingError, match="upcasting"):
        r.upcast(TYPE, {"sample_id": "S", "volume": 1}, from_version=1)


def test_registration_rules() -> None:
    r = EventRegistry()
    with pytest.raises(ConfigurationError, match="nothing to upcast"):
        r.register(TYPE, ReceivedV1, upcast=v1_to_v2)
    r.register(TYPE, ReceivedV1)
    r.register(TYPE, ReceivedV1)  # the same again: fine
    with pytest.raises(ConfigurationError, match="already registered"):
        r.register(TYPE, ReceivedV2)
    r.register(TYPE, ReceivedV3, version=3)
    with pytest.raises(ConfigurationError, match="oldest first"):
        r.register(TYPE, ReceivedV2, version=2)
    assert r.versions(TYPE) == [1, 3] and r.model_for(TYPE) is ReceivedV3


def test_schemas_per_type_and_version_validate_their_payloads(tmp_path: Path) -> None:
    schemas = json_schemas(registry())
    assert sorted(schemas) == [f"urn:tracseq:event:{TYPE}:v{n}" for n in (1, 2, 3)]
    v1 = schemas[f"urn:tracseq:event:{TYPE}:v1"]
    jsonschema.validate({"sample_id": "S", "volume": 3}, v1)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"sample_id": "S", "volume": "3"}, v1)
    written = write_json_schemas(registry(), tmp_path / "baseline")
    assert sorted(p.name for p in written) == [f"{TYPE}.v{n}.schema.json" for n in (1, 2, 3)]
    assert load_json_schemas(tmp_path / "baseline") == schemas
    bundle = tmp_path / "bundle.json"
    bundle.write_text(json.dumps(schemas))
    assert load_json_schemas(bundle) == schemas
    with pytest.raises(ConfigurationError, match="no schema baseline"):
        load_json_schemas(tmp_path / "missing")


def test_the_check_lists_what_breaks_stored_events() -> None:
    baseline = json_schemas(registry())
    assert check_compatibility(registry(), baseline) == []

    class V3Broken(BaseModel):
        sample_id: int  # type change
        site: str  # default dropped: now required
        operator: str  # new required field without default
        kind: Literal["DNA"] | None = None  # a value removed
        # volume_ul removed

    changed = EventRegistry()
    changed.register(TYPE, ReceivedV1)
    changed.register(TYPE, ReceivedV2, version=2, upcast=v1_to_v2)
    changed.register(TYPE, V3Broken, version=3)
    found = {(p.version, p.path, p.change) for p in check_compatibility(changed, baseline)}
    assert {
        (3, "$.sample_id", "type changed"),
        (3, "$.volume_ul", "field removed"),
        (3, "$.site", "field became required"),
        (3, "$.operator", "field added as required"),
        (3, "$.kind", "values removed"),
    } <= found
    dropped = EventRegistry()
    dropped.register(TYPE, ReceivedV2, version=2)
    changes = {(p.version, p.change) for p in check_compatibility(dropped, baseline)}
    assert (1, "version removed") in changes and (3, "version removed") in changes
    assert [p.change for p in check_compatibility(EventRegistry(), baseline)] == [
        "type removed"
    ] * 3


def test_a_version_without_upcaster_must_read_the_previous_one() -> None:
    r = EventRegistry()
    r.register(TYPE, ReceivedV1)
    r.register(TYPE, ReceivedV2, version=2)  # no upcaster, and volume -> volume_ul
    problems = check_compatibility(r, json_schemas(r))
    assert {p.change for p in problems} == {"no upcaster"}
    assert any("volume" in p.path for p in problems)


# Property: whenever the check reports nothing, the new model reads every payload the
# old one wrote.
FIELD_TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list[int]": list[int],
    "str|None": str | None,
    "lit": Literal["a", "b"],
    "lit_a": Literal["a"],
}
VALUES = {
    "int": st.integers(-(2**31), 2**31),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "str": st.text(max_size=5),
    "bool": st.booleans(),
    "list[int]": st.lists(st.integers(0, 9), max_size=3),
    "str|None": st.none() | st.text(max_size=3),
    "lit": st.sampled_from(["a", "b"]),
    "lit_a": st.just("a"),
}
field_specs = st.dictionaries(
    st.sampled_from(["a", "b", "c", "d"]),
    st.tuples(st.sampled_from(sorted(FIELD_TYPES)), st.booleans()),  # (type, has default)
    max_size=4,
)


def model(name: str, spec: dict[str, tuple[str, bool]]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for field, (kind, defaulted) in spec.items():
        default = ... if not defaulted else _default(kind)
        fields[field] = (FIELD_TYPES[kind], default)
    return create_model(name, **fields)


def _default(kind: str) -> Any:
    return {
        "int": 0,
        "float": 0.0,
        "str": "",
        "bool": False,
        "list[int]": [],
        "str|None": None,
        "lit": "a",
        "lit_a": "a",
    }[kind]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(old=field_specs, new=field_specs, data=st.data())
def test_no_reported_break_means_old_payloads_still_read(
    old: dict[str, tuple[str, bool]], new: dict[str, tuple[str, bool]], data: st.DataObject
) -> None:
    before, after = EventRegistry(), EventRegistry()
    before.register(TYPE, model("Old", old))
    after.register(TYPE, model("New", new))
    problems = check_compatibility(after, json_schemas(before))
    payload = {f: data.draw(VALUES[kind]) for f, (kind, _) in old.items()}
    written = model("Old", old).model_validate(payload).model_dump(mode="json")
    if not problems:
        try:
            model("New", new).model_validate(written)
        except ValidationError as exc:
            pytest.fail(f"no break reported, yet {written} does not read: {exc}")


ASYNCAPI_SCHEMA = json.loads(
    (Path(__file__).parent / "data" / "asyncapi-3.0.0.schema.json").read_text()
)
"""The official AsyncAPI 3.0.0 JSON Schema (npm package @asyncapi/specs 6.11.1,
schemas/3.0.0-without-$id.json, Apache-2.0), minified."""


class Location(BaseModel):
    freezer: str
    shelf: int


class Stored(BaseModel):
    sample_id: str
    at: Location


def test_the_asyncapi_document_is_valid_asyncapi_3() -> None:
    r = registry()
    r.register("tracseq.sample.stored", Stored)
    doc = asyncapi_document(
        r,
        title="TracSeq events",
        channels={"tracseq.samples": [TYPE, "tracseq.sample.stored"]},
        servers={"local": "127.0.0.1:9092"},
    )
    jsonschema.validate(doc, ASYNCAPI_SCHEMA)
    messages = doc["components"]["messages"]
    assert sorted(messages) == [
        f"{TYPE}.v1",
        f"{TYPE}.v2",
        f"{TYPE}.v3",
        "tracseq.sample.stored.v1",
    ]
    assert (
        messages[f"{TYPE}.v1"]["x-deprecated"] is True
        and "x-deprecated" not in messages[f"{TYPE}.v3"]
    )
    schemas = doc["components"]["schemas"]
    assert "tracseq.sample.stored.v1.Location" in schemas  # nested models hoisted
    assert doc["channels"]["tracseq.samples"]["address"] == "tracseq.samples"
    jsonschema.validate(asyncapi_document(r, title="all in one"), ASYNCAPI_SCHEMA)
    with pytest.raises(ConfigurationError, match="unregistered"):
        asyncapi_document(r, title="x", channels={"t": ["nope"]})
