"""Template definitions validate themselves with clear messages."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tracseq_kit.schemas import FieldDefinition, FieldRules, Template, TemplateCreate, check_pattern


def test_enum_needs_options_and_barcode_needs_a_pattern() -> None:
    with pytest.raises(ValidationError, match="needs options"):
        FieldDefinition(name="sample_type", type="enum")
    with pytest.raises(ValidationError, match="needs barcode_pattern"):
        FieldDefinition(name="tube", type="barcode")


def test_names_rules_and_ranges() -> None:
    with pytest.raises(ValidationError, match="lowercase"):
        FieldDefinition(name="Sample ID")
    with pytest.raises(ValidationError, match="min_value is greater"):
        FieldRules(min_value=5, max_value=1)
    with pytest.raises(ValidationError, match="min_length is greater"):
        FieldRules(min_length=5, max_length=1)
    assert FieldDefinition(name="volume_ul").label == "Volume ul"


def test_requests_forbid_typos_responses_tolerate_new_fields() -> None:
    with pytest.raises(ValidationError, match="extra"):
        TemplateCreate(name="x", descriptoin="typo")  # type: ignore[call-arg]
    t = Template.model_validate(
        {"id": "t1", "name": "x", "category": "qc", "status": "draft", "new_server_field": 1}
    )
    assert t.id == "t1"


def test_duplicates_and_unknown_references() -> None:
    with pytest.raises(ValidationError, match="duplicated field names"):
        TemplateCreate(name="x", fields=[FieldDefinition(name="a"), FieldDefinition(name="a")])
    with pytest.raises(ValidationError, match="unknown field 'nope'"):
        TemplateCreate(
            name="x",
            fields=[FieldDefinition(name="a")],
            cross_field_rules=[{"when_field": "a", "equals": ["x"], "then_required": ["nope"]}],
        )


@pytest.mark.parametrize("bad", ["(a+)+", r"(\w*)*$", "(x{2,})+", "[", "a" * 201])
def test_dangerous_or_broken_patterns_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        check_pattern(bad)


@given(st.from_regex(r"[A-Z]{2}[0-9]{1,6}(-[A-Z])?", fullmatch=True))
def test_ordinary_patterns_pass(sample: str) -> None:
    assert check_pattern(r"[A-Z]{2}[0-9]{1,6}(-[A-Z])?") and sample
