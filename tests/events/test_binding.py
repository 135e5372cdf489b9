"""CloudEvent model and the Kafka protocol binding (spec examples and round trips)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tracseq_kit import EventEncodingError, UnknownEventTypeError
from tracseq_kit.events import CloudEvent, EventRegistry, KafkaMessage, from_kafka, to_kafka


class TemplatePublished(BaseModel):
    template_id: str
    version: int


def registry() -> EventRegistry:
    r = EventRegistry()
    r.register("tracseq.template.published", TemplatePublished)
    return r


def test_spec_binary_example_decodes() -> None:
    # The binary-mode example of the CloudEvents Kafka protocol binding 1.0 (section 3.2).
    message = KafkaMessage(
        key=b"mykey",
        value=b'{"x": 1}',
        headers=[
            ("ce_specversion", b"1.0"),
            ("ce_type", b"com.example.someevent"),
            ("ce_source", b"/mycontext/subcontext"),
            ("ce_id", b"1234-1234-1234"),
            ("ce_time", b"2018-04-05T03:56:24Z"),
            ("content-type", b"application/json"),
        ],
    )
    event = from_kafka(message)
    assert event.type == "com.example.someevent"
    assert event.id == "1234-1234-1234"
    assert event.time == datetime(2018, 4, 5, 3, 56, 24, tzinfo=UTC)
    assert event.data == {"x": 1}


def test_spec_structured_example_decodes() -> None:
    message = KafkaMessage(
        key=None,
        value=(
            b'{"specversion":"1.0","type":"com.example.someevent","source":"/mycontext/subcontext",'
            b'"id":"1234-1234-1234","time":"2018-04-05T03:56:24Z","datacontenttype":"application/json",'
            b'"comexampleextension1":"value","data":{"appinfoA":"abc"}}'
        ),
        headers=[("content-type", b"application/cloudevents+json; charset=UTF-8")],
    )
    event = from_kafka(message)
    assert event.source == "/mycontext/subcontext"
    assert event.extensions == {"comexampleextension1": "value"}
    assert event.data == {"appinfoA": "abc"}


def test_typed_round_trip_and_key() -> None:
    event = CloudEvent[TemplatePublished](
        source="/template-service",
        type="tracseq.template.published",
        subject="tpl-1",
        data=TemplatePublished(template_id="tpl-1", version=2),
    )
    for mode in ("binary", "structured"):
        message = to_kafka(event, mode=mode)  # type: ignore[arg-type]
        assert message.key == b"tpl-1"
        back = from_kafka(message, registry())
        assert isinstance(back.data, TemplatePublished)
        assert back == event


def test_partition_key_extension_overrides_subject() -> None:
    event = CloudEvent[Any](source="s", type="t", subject="a", extensions={"partitionkey": "b"})
    assert to_kafka(event).key == b"b"


def test_errors() -> None:
    with pytest.raises(UnknownEventTypeError):
        from_kafka(to_kafka(CloudEvent[Any](source="s", type="other")), registry())
    with pytest.raises(EventEncodingError, match="ce_specversion"):
        from_kafka(KafkaMessage(None, b"{}", []))
    with pytest.raises(EventEncodingError, match="not JSON"):
        from_kafka(KafkaMessage(None, b"{", [("content-type", b"application/cloudevents+json")]))
    with pytest.raises(ValidationError):
        CloudEvent[Any](source="s", type="t", extensions={"Bad-Name": "x"})
    with pytest.raises(ValidationError):
        CloudEvent[Any](source="", type="t")
    with pytest.raises(ValidationError):
        CloudEvent[Any](source="s", type="t", time=datetime(2020, 1, 1))  # naive


text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


@given(
    source=text,
    type_=text,
    subject=st.none() | text,
    data=json_values,
    ext=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9]{0,9}", fullmatch=True).filter(
            lambda n: n not in {"id", "source", "type", "subject", "time", "data"}
        ),
        text,
        max_size=3,
    ),
    mode=st.sampled_from(["binary", "structured"]),
)
def test_any_event_round_trips(
    source: str, type_: str, subject: str | None, data: Any, ext: dict[str, str], mode: str
) -> None:
    event = CloudEvent[Any](source=source, type=type_, subject=subject, data=data, extensions=ext)
    back = from_kafka(to_kafka(event, mode=mode))  # type: ignore[arg-type]
    assert back.model_dump() == event.model_dump()


def test_an_event_without_data_or_subject_still_has_a_kafka_value() -> None:
    event = CloudEvent[Any](source="s", type="t")
    message = to_kafka(event)
    assert message.key is None and message.value == b""
    assert from_kafka(message).data is None


@given(data=json_values)
def test_data_json_text_is_the_json_of_data_json(data: Any) -> None:
    import json

    event = CloudEvent[Any](source="s", type="t", data=data)
    text = event.data_json_text()
    assert (json.loads(text) if text is not None else None) == event.data_json()
    typed = CloudEvent[TemplatePublished](
        source="s", type="t", data=TemplatePublished(template_id="x", version=1)
    )
    assert json.loads(typed.data_json_text() or "") == typed.data_json()
