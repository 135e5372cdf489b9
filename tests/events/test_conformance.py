"""The kit's Kafka binding against the official CloudEvents SDK (``cloudevents.v1``).

Round trips in both directions and both content modes with JSON, text and bytes data,
the examples of the CloudEvents specs, and a property test feeding adversarial messages
to both readers: they agree, or the kit rejects a message that breaks the spec.

Known quirks of the SDK that the helpers below work around (each a deliberate
difference documented in ``tracseq_kit.events._binding``):

- its structured writer puts ``datacontenttype`` into the ``content-type`` header instead
  of the event format's media type, and its structured reader copies every header into
  the attributes, so it is given the body alone;
- its default binary data reader is ``json.loads`` whatever the content type, and fails
  on a missing value (an event without data): readers here pick JSON by content type, as
  its own newer core API does, and read no value as no data;
- it keeps JSON ``null`` members (the JSON format says they mean "absent"), so it is
  given the body without them;
- it always turns the Kafka key into ``partitionkey``; the kit does so unless the key is
  the subject (its default key), so effective partition keys are compared.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.v1.event import CloudEvent as CoreEvent
from cloudevents.v1 import kafka as sdk_kafka
from cloudevents.v1.http import CloudEvent as SdkEvent
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from tracseq_kit import EventEncodingError, TracSeqError
from tracseq_kit.events import CloudEvent, EventRegistry, KafkaMessage, from_kafka, to_kafka

# The SDK core's JSON-format rule for "this content type is JSON".
SDK_JSON = re.compile(r"^(application|text)/([a-zA-Z0-9\-\.]+\+)?json(;.*)?$")
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")
CORE = ("id", "source", "specversion", "type")
OPTIONAL = ("subject", "time", "datacontenttype", "dataschema")


def sdk_is_json(content_type: str | None) -> bool:
    return content_type is None or bool(SDK_JSON.match(content_type))


def sdk_message(message: KafkaMessage) -> sdk_kafka.KafkaMessage:
    # The SDK takes a dict: the last header of a name (in any case) wins, as in the kit.
    headers = {k.lower(): bytes(v) for k, v in message.headers}
    return sdk_kafka.KafkaMessage(headers, message.key, message.value)  # type: ignore[arg-type]


def is_structured(message: KafkaMessage) -> bool:
    content_type = (message.header("content-type") or b"").decode("latin-1").lower()
    if content_type.startswith("application/cloudevents"):
        return True
    # The SDK's own structured output (no format media type): a JSON object body
    # with specversion and no ce_ header.
    if any(k.lower().startswith("ce_") for k, _ in message.headers) or not message.value:
        return False
    try:
        doc = json.loads(message.value)
    except ValueError:
        return False
    return isinstance(doc, dict) and "specversion" in doc


def sdk_decode(message: KafkaMessage) -> SdkEvent:
    """Read ``message`` with the SDK (content mode chosen as the binding says)."""
    if is_structured(message):
        content_type = message.header("content-type")
        doc = json.loads(message.value or b"")
        if isinstance(doc, dict):  # JSON null means absent (JSON format 1.0): the SDK keeps it
            doc = {k: v for k, v in doc.items() if v is not None}
        body_only = KafkaMessage(message.key, json.dumps(doc).encode(), [])
        event = sdk_kafka.from_structured(sdk_message(body_only))
        header_is_format = (content_type or b"").lower().startswith(b"application/cloudevents")
        if content_type and not header_is_format and "datacontenttype" not in doc:
            event["datacontenttype"] = content_type.decode()  # the SDK writer's convention
        return event
    content_type = message.header("content-type")
    json_data = sdk_is_json(content_type.decode() if content_type else None)

    def data(value: bytes | None) -> Any:
        if not value:
            return None
        return json.loads(value) if json_data else value

    return sdk_kafka.from_binary(sdk_message(message), data_unmarshaller=data)


def effective_key(attrs: dict[str, Any], key: bytes | None) -> str | None:
    explicit = attrs.get("partitionkey")
    if isinstance(explicit, bytes):
        try:
            explicit = explicit.decode()
        except UnicodeDecodeError:
            explicit = None  # a binary key is no partitionkey (a String attribute)
    if explicit is not None:
        return str(explicit)
    return attrs.get("subject")


def sent_attributes(message: KafkaMessage) -> set[str]:
    if is_structured(message):
        return {k for k, v in json.loads(message.value or b"{}").items() if v is not None}
    return {k.lower()[3:] for k, _ in message.headers if k.lower().startswith("ce_")}


def sdk_canonical(event: SdkEvent, message: KafkaMessage) -> dict[str, Any]:
    attrs = dict(event.get_attributes())
    for invented in {"id", "time", "specversion"} - sent_attributes(message):
        attrs.pop(invented, None)  # the SDK makes these up when they were not sent
    if is_structured(message):  # the attribute sent wins over the key the SDK copied in
        doc = json.loads(message.value or b"{}")
        if doc.get("partitionkey") is not None:
            attrs["partitionkey"] = doc["partitionkey"]
    else:
        sent = {k.lower(): v for k, v in message.headers}.get("ce_partitionkey")
        if sent is not None:
            attrs["partitionkey"] = sent.decode()
    out: dict[str, Any] = {
        "key": effective_key(attrs, message.key),
        "data": event.get_data() if event.get_data() not in (b"", "") else None,
    }
    for name in (*CORE, *OPTIONAL):
        if attrs.get(name) is not None:
            out[name] = attrs[name]
    if "time" in out:
        out["time"] = datetime.fromisoformat(out["time"])
    out["extensions"] = {
        k: v for k, v in attrs.items() if k not in (*CORE, *OPTIONAL, "partitionkey")
    }
    return out


def kit_canonical(event: CloudEvent[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"key": event.partition_key, "data": kit_data(event)}
    for name in (*CORE, *OPTIONAL):
        value = getattr(event, name)
        if value is not None:
            out[name] = value
    out["extensions"] = {k: v for k, v in event.extensions.items() if k != "partitionkey"}
    return out


def kit_data(event: CloudEvent[Any]) -> Any:
    data = event.data
    if isinstance(data, bytes | str) and not data:
        return None
    return data if isinstance(data, bytes) else event.data_json()


def stringly(canonical: dict[str, Any]) -> dict[str, Any]:
    """Binary mode carries extension values as strings."""
    exts = canonical["extensions"]
    canonical["extensions"] = {
        k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in exts.items()
    }
    return canonical


# -- the specs' examples ---------------------------------------------------------------

KAFKA_BINARY_EXAMPLE = KafkaMessage(  # Kafka protocol binding 1.0, section 3.2.5
    key=b"mykey",
    value=b"\x00\x01avro-bytes",
    headers=[
        ("ce_specversion", b"1.0"),
        ("ce_type", b"com.example.someevent"),
        ("ce_source", b"/mycontext/subcontext"),
        ("ce_id", b"1234-1234-1234"),
        ("ce_time", b"2018-04-05T03:56:24Z"),
        ("content-type", b"application/avro"),
    ],
)
KAFKA_STRUCTURED_EXAMPLE = KafkaMessage(  # section 3.3.4 (data: XML as a JSON string)
    key=b"mykey",
    value=json.dumps(
        {
            "specversion": "1.0",
            "type": "com.example.someevent",
            "source": "/mycontext/subcontext",
            "id": "1234-1234-1234",
            "time": "2018-04-05T03:56:24Z",
            "datacontenttype": "application/xml",
            "data": '<much wow="xml"/>',
        }
    ).encode(),
    headers=[("content-type", b"application/cloudevents+json; charset=UTF-8")],
)
JSON_FORMAT_EXAMPLES = [  # JSON event format 1.0, section 3.2 and the spec's examples
    {
        "specversion": "1.0",
        "type": "com.example.someevent",
        "source": "/mycontext",
        "id": "A234-1234-1234",
        "time": "2018-04-05T17:31:00Z",
        "comexampleextension1": "value",
        "comexampleothervalue": 5,
        "datacontenttype": "application/vnd.apache.thrift.binary",
        "data_base64": base64.b64encode(b"\x00\x01thrift\xff").decode(),
    },
    {
        "specversion": "1.0",
        "type": "com.example.someevent",
        "source": "/mycontext",
        "subject": None,
        "id": "C234-1234-1234",
        "time": "2018-04-05T17:31:00Z",
        "comexampleextension1": "value",
        "comexampleothervalue": 5,
        "datacontenttype": "application/json",
        "data": {"appinfoA": "abc", "appinfoB": 123, "appinfoC": True},
    },
    {
        "specversion": "1.0",
        "type": "com.github.pull_request.opened",
        "source": "https://github.com/cloudevents/spec/pull",
        "subject": "123",
        "id": "A234-1234-1234",
        "time": "2018-04-05T17:31:00Z",
        "comexampleextension1": "value",
        "comexampleothervalue": 5,
        "datacontenttype": "text/xml",
        "data": '<much wow="xml"/>',
    },
]


@pytest.mark.parametrize("message", [KAFKA_BINARY_EXAMPLE, KAFKA_STRUCTURED_EXAMPLE])
def test_the_kafka_binding_examples_read_alike(message: KafkaMessage) -> None:
    kit = from_kafka(message)
    assert kit_canonical(kit) == sdk_canonical(sdk_decode(message), message)
    assert kit.partition_key == "mykey"
    assert kit.time == datetime(2018, 4, 5, 3, 56, 24, tzinfo=UTC)


@pytest.mark.parametrize("doc", JSON_FORMAT_EXAMPLES)
def test_the_json_format_examples_read_alike_and_round_trip(doc: dict[str, Any]) -> None:
    message = KafkaMessage(
        None, json.dumps(doc).encode(), [("content-type", b"application/cloudevents+json")]
    )
    kit = from_kafka(message)
    assert kit_canonical(kit) == sdk_canonical(sdk_decode(message), message)
    again = to_kafka(kit, mode="structured")
    back = json.loads(again.value or b"")
    assert back == {k: v for k, v in doc.items() if v is not None}  # data_base64 kept as is


def test_data_base64_reads_as_bytes_and_bytes_write_as_data_base64() -> None:
    (doc,) = [d for d in JSON_FORMAT_EXAMPLES if "data_base64" in d]
    message = KafkaMessage(
        None, json.dumps(doc).encode(), [("content-type", b"application/cloudevents+json")]
    )
    event = from_kafka(message)
    assert event.data == base64.b64decode(doc["data_base64"])
    raw = CloudEvent[Any](source="s", type="t", datacontenttype="image/png", data=b"\x89PNG\xff")
    written = json.loads(to_kafka(raw, mode="structured").value or b"")
    assert written["data_base64"] == base64.b64encode(b"\x89PNG\xff").decode()
    assert "data" not in written


def test_binary_mode_sends_the_partition_key_as_the_key_only() -> None:
    event = CloudEvent[Any](source="s", type="t", subject="a", extensions={"partitionkey": "p"})
    message = to_kafka(event)
    assert message.key == b"p"
    assert not [k for k, _ in message.headers if k.lower() == "ce_partitionkey"]
    sdk = SdkEvent(
        {
            "type": "t",
            "source": "s",
            "subject": "a",
            "partitionkey": "p",
            "datacontenttype": "application/json",
        },
        {"x": 1},
    )
    sdk_message_ = sdk_kafka.to_binary(sdk)
    assert "ce_partitionkey" not in sdk_message_.headers  # the SDK does the same
    assert from_kafka(message) == event  # and the key comes back as partitionkey


def test_a_data_less_event_has_no_value_in_binary_mode() -> None:
    event = CloudEvent[Any](source="s", type="t", subject="k")
    assert to_kafka(event).value is None  # binding 3.2.2: no data, no value
    assert from_kafka(to_kafka(event)) == event


def test_errors_the_sdk_does_not_catch() -> None:
    both = {
        "specversion": "1.0",
        "type": "t",
        "source": "s",
        "id": "1",
        "data": 1,
        "data_base64": "AA==",
    }
    structured = [("content-type", b"application/cloudevents+json")]
    with pytest.raises(EventEncodingError, match="not both"):
        from_kafka(KafkaMessage(None, json.dumps(both).encode(), structured))
    no_id = [("ce_specversion", b"1.0"), ("ce_type", b"t"), ("ce_source", b"s")]
    with pytest.raises(EventEncodingError, match="no id"):
        from_kafka(KafkaMessage(None, b"1", no_id))  # the SDK invents an id
    with pytest.raises(EventEncodingError, match="RFC 3339"):
        from_kafka(KafkaMessage(None, b"1", [*no_id, ("ce_id", b"1"), ("ce_time", b"2018-04-05")]))
    with pytest.raises(EventEncodingError, match="not UTF-8"):
        from_kafka(KafkaMessage(None, b"1", [*no_id, ("ce_id", b"\xff")]))
    with pytest.raises(EventEncodingError, match="event format"):
        from_kafka(KafkaMessage(None, b"x", [("content-type", b"application/cloudevents+avro")]))


# -- round trips in both directions ------------------------------------------------------


class Sample(BaseModel):
    sample_id: str
    volume_ul: float


text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
ext_names = st.from_regex(r"[a-z][a-z0-9]{0,24}", fullmatch=True).filter(
    lambda n: (
        n
        not in {
            "id",
            "source",
            "type",
            "subject",
            "time",
            "data",
            "dataschema",
            "specversion",
            "datacontenttype",
            "partitionkey",
        }
    )
)
ext_values = text | st.booleans() | st.integers(-(2**31), 2**31 - 1)
times = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@st.composite
def kit_events(draw: st.DrawFn) -> CloudEvent[Any]:
    kind = draw(st.sampled_from(["json", "model", "text", "bytes", "none"]))
    content_type: str | None
    if kind == "json":
        content_type = draw(
            st.sampled_from(["application/json", "text/json", "application/vnd.lab+json", None])
        )
        data: Any = draw(json_values.filter(lambda v: v is not None))
    elif kind == "model":
        content_type = "application/json"
        data = Sample(sample_id=draw(text), volume_ul=draw(st.floats(0, 1e6)))
    elif kind == "text":
        content_type = draw(
            st.sampled_from(["text/plain", "text/csv; charset=utf-8", "application/xml"])
        )
        data = draw(text)
    elif kind == "bytes":
        content_type = draw(st.sampled_from(["application/octet-stream", "image/png"]))
        data = draw(st.binary(min_size=1, max_size=40))
    else:
        content_type, data = draw(st.sampled_from(["application/json", None])), None
    extensions = draw(st.dictionaries(ext_names, ext_values, max_size=3))
    if draw(st.booleans()):
        extensions["partitionkey"] = draw(text)
    return CloudEvent[Any](
        id=draw(text),
        source=draw(text),
        type=draw(text),
        subject=draw(st.none() | text),
        time=draw(st.none() | times),
        dataschema=draw(st.none() | st.just("urn:x:y:v1")),
        datacontenttype=content_type,
        data=data,
        extensions=extensions,
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(event=kit_events(), mode=st.sampled_from(["binary", "structured"]))
def test_kit_writes_what_the_sdk_reads(event: CloudEvent[Any], mode: str) -> None:
    message = to_kafka(event, mode=mode)  # type: ignore[arg-type]
    sdk = sdk_canonical(sdk_decode(message), message)
    kit = kit_canonical(event)
    if mode == "binary":
        kit = stringly(kit)
        if isinstance(kit["data"], str) and not sdk_is_json(event.datacontenttype):
            kit["data"] = kit["data"].encode()  # text travels as bytes in binary mode
    assert sdk == kit
    back = from_kafka(message)
    assert kit_canonical(back) == sdk  # and the kit reads its own message alike


@st.composite
def sdk_events(draw: st.DrawFn) -> tuple[SdkEvent, Any]:
    kind = draw(st.sampled_from(["json", "text", "bytes"]))
    if kind == "json":
        content_type = draw(st.sampled_from(["application/json", "application/vnd.lab+json"]))
        data: Any = draw(st.dictionaries(text, json_values, min_size=1, max_size=3))
        marshal: Any = json.dumps
    elif kind == "text":
        content_type, data = "text/plain", draw(text)
        marshal = str.encode
    else:
        content_type, data = "application/octet-stream", draw(st.binary(min_size=1, max_size=30))
        marshal = None
    attrs: dict[str, Any] = {
        "type": draw(text),
        "source": draw(text),
        "id": draw(text),
        "datacontenttype": content_type,
    }
    if draw(st.booleans()):
        attrs["subject"] = draw(text)
    if draw(st.booleans()):
        attrs["partitionkey"] = draw(text)
    if draw(st.booleans()):
        attrs["time"] = draw(times).isoformat()
    for name, value in draw(st.dictionaries(ext_names, text, max_size=2)).items():
        attrs[name] = value
    return SdkEvent(attrs, data), marshal


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(made=sdk_events(), mode=st.sampled_from(["binary", "structured"]))
def test_the_sdk_writes_what_the_kit_reads(made: tuple[SdkEvent, Any], mode: str) -> None:
    event, marshal = made
    if mode == "binary":
        raw = sdk_kafka.to_binary(event, data_marshaller=marshal or (lambda b: b))
    else:
        raw = sdk_kafka.to_structured(event)
    key = raw.key.encode() if isinstance(raw.key, str) else raw.key
    message = KafkaMessage(key, raw.value, list(raw.headers.items()))  # type: ignore[arg-type]
    kit = from_kafka(message)
    assert kit_canonical(kit) == sdk_canonical(sdk_decode(message), message)
    assert kit.id == event["id"] and kit.partition_key == (
        event.get("partitionkey") or event.get("subject")
    )


# -- adversarial messages: agree, or the kit rejects what the spec forbids --------------

header_names = st.sampled_from(
    [
        "ce_id",
        "ce_source",
        "ce_specversion",
        "ce_type",
        "ce_subject",
        "ce_time",
        "ce_dataschema",
        "ce_partitionkey",
        "ce_comexample",
        "CE_ID",
        "ce_Bad",
        "ce_bad-name",
        "ce_data",
        "content-type",
        "x-other",
    ]
)
header_values = st.sampled_from(
    [
        b"1.0",
        b"0.3",
        b"",
        b"x",
        b"/src",
        b"2018-04-05T03:56:24Z",
        b"2018-04-05",
        b"2018-04-05T03:56:24.5+02:00",
        b"\xff\xfe",
        b"application/json",
        b"text/plain",
        b"application/cloudevents+json",
        b"application/cloudevents+avro",
        b"k",
    ]
)
attr_values = st.one_of(
    st.sampled_from(
        [
            "1.0",
            "0.3",
            "",
            "x",
            "/src",
            "2018-04-05T03:56:24Z",
            "2018-04-05",
            "application/json",
            "text/plain",
            "AAEC",
            "not base64!",
        ]
    ),
    st.integers(-(2**40), 2**40),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
)
doc_keys = st.sampled_from(
    [
        "id",
        "source",
        "specversion",
        "type",
        "subject",
        "time",
        "dataschema",
        "datacontenttype",
        "data",
        "data_base64",
        "partitionkey",
        "comexample",
        "Bad",
        "x-y",
    ]
)


@st.composite
def messages(draw: st.DrawFn) -> KafkaMessage:
    key = draw(st.none() | st.sampled_from([b"k", b"x", b"\xff"]))
    if draw(st.booleans()):  # binary
        required = [
            ("ce_id", b"1"),
            ("ce_source", b"/src"),
            ("ce_specversion", b"1.0"),
            ("ce_type", b"t"),
        ]
        base = draw(st.lists(st.sampled_from(required), max_size=4, unique=True))
        extra = draw(st.lists(st.tuples(header_names, header_values), max_size=4))
        value = draw(
            st.none() | st.sampled_from([b"", b'{"a": 1}', b"1", b"{", b"\x00\xff", b'"text"'])
        )
        return KafkaMessage(key, value, [*base, *extra])
    doc: dict[str, Any] = {}
    if draw(st.booleans()):
        doc.update(id="1", source="/src", specversion="1.0", type="t")
    doc.update(draw(st.dictionaries(doc_keys, attr_values, max_size=4)))
    body = json.dumps(doc).encode() if draw(st.integers(0, 9)) else b"[1]"
    header = draw(st.sampled_from([b"application/cloudevents+json", b"application/json", None]))
    return KafkaMessage(key, body, [("content-type", header)] if header else [])


def spec_violation(message: KafkaMessage, sdk: SdkEvent) -> str | None:
    """What makes the SDK-read ``message`` an invalid CloudEvent, if anything."""
    sent = sent_attributes(message)
    if is_structured(message):
        doc = json.loads(message.value or b"{}")
        if "data" in sent and "data_base64" in sent:
            return "data and data_base64"
        encoded = doc.get("data_base64")
        if encoded is not None:
            try:
                base64.b64decode(encoded, validate=True)
            except Exception:
                return "bad base64"
        if any(not re.fullmatch(r"[a-z0-9]+", k) for k in sent - {"data_base64"}):
            return "attribute name"  # the SDK lowercases what it reads
        extensions = {
            k: v
            for k, v in doc.items()
            if v is not None and k not in (*CORE, *OPTIONAL, "data", "data_base64")
        }
        for value in extensions.values():
            if isinstance(value, bool) or isinstance(value, str):
                continue
            if not isinstance(value, int) or not -(2**31) <= value < 2**31:
                return "extension value type"
    else:
        for name, value in message.headers:
            if name.lower().startswith("ce_") or name.lower() == "content-type":
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    return "a header value that is not UTF-8"  # even one the SDK's dict drops
    if missing := set(CORE) - sent:
        return f"missing {missing}"
    attrs = {k: v for k, v in sdk.get_attributes().items() if v is not None}  # null: absent
    attrs.pop("partitionkey", None)
    time = attrs.get("time")
    if isinstance(time, str):
        if not RFC3339.fullmatch(time):
            return "time not RFC 3339"
        attrs["time"] = datetime.fromisoformat(time)
    try:
        CoreEvent(attrs, None)  # the SDK core's attribute rules
    except Exception as exc:
        return f"core: {exc}"
    return None


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(message=messages())
@example(KafkaMessage(None, b"{}", [("content-type", b"application/cloudevents+json")]))
def test_adversarial_messages_agree_or_the_kit_rejects_what_breaks_the_spec(
    message: KafkaMessage,
) -> None:
    note(repr(message))
    try:
        sdk: SdkEvent | None = sdk_decode(message)
    except Exception as exc:
        note(f"the SDK: {exc!r}")
        sdk = None
    try:
        kit: CloudEvent[Any] | None = from_kafka(message)
    except TracSeqError:
        kit = None
    if sdk is None:
        assert kit is None, "the kit accepted what the SDK cannot read"
        return
    violation = spec_violation(message, sdk)
    if violation is not None:
        assert kit is None, f"the kit accepted an invalid CloudEvent ({violation})"
        return
    assert kit is not None, "the kit rejected a valid CloudEvent"
    expected = sdk_canonical(sdk, message)
    got = kit_canonical(kit)
    if not is_structured(message):
        got = stringly(got)
    assert got == expected


def test_a_registry_reads_the_sdks_events_typed() -> None:
    registry = EventRegistry()
    registry.register("tracseq.sample.received", Sample)
    sdk = SdkEvent(
        {
            "type": "tracseq.sample.received",
            "source": "/lab",
            "id": "e-1",
            "datacontenttype": "application/json",
        },
        {"sample_id": "S-1", "volume_ul": 2.5},
    )
    raw = sdk_kafka.to_binary(sdk)
    event = from_kafka(KafkaMessage(None, raw.value, list(raw.headers.items())), registry)  # type: ignore[arg-type]
    assert event.data == Sample(sample_id="S-1", volume_ul=2.5)
