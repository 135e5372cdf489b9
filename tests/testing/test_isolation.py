"""Invariants of the isolation helpers: names are valid, unique and bounded."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracseq_kit import ConfigurationError
from tracseq_kit.testing import topic_name, unique_name
from tracseq_kit.testing._isolation import with_database, with_query

IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


@given(st.text(max_size=300), st.integers(min_value=14, max_value=300))
def test_unique_name_is_a_bounded_unquoted_identifier(base: str, max_length: int) -> None:
    name = unique_name(base, max_length=max_length)
    assert IDENTIFIER.match(name), name
    assert len(name) <= max_length
    assert TOPIC.match(name)


@given(st.text(max_size=80))
def test_unique_name_never_repeats(base: str) -> None:
    names = {unique_name(base) for _ in range(50)}
    assert len(names) == 50


@given(st.from_regex(r"[A-Za-z0-9._-]{1,200}", fullmatch=True))
def test_topic_name_keeps_the_base_and_is_valid(base: str) -> None:
    first, second = topic_name(base), topic_name(base)
    assert first != second
    assert first.startswith(base + ".")
    assert TOPIC.match(first)


@given(st.text(min_size=1).filter(lambda s: not re.fullmatch(r"[A-Za-z0-9._-]+", s)))
def test_topic_name_rejects_characters_kafka_rejects(base: str) -> None:
    with pytest.raises(ConfigurationError, match="may only contain"):
        topic_name(base)


def test_topic_name_rejects_a_base_that_makes_the_name_too_long() -> None:
    with pytest.raises(ConfigurationError, match="too long"):
        topic_name("a" * 240)


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://postgres@127.0.0.1:5432/test",
        "postgresql://postgres:@/postgres?host=/tmp/pg%20dir/pgdata",
        "postgresql://u:p@db:5432/app?sslmode=disable&application_name=x",
    ],
)
def test_dsn_rewrites_keep_everything_else(dsn: str) -> None:
    original = urlsplit(dsn)
    with_schema = urlsplit(with_query(dsn, search_path="s_1"))
    assert with_schema.netloc == original.netloc and with_schema.path == original.path
    query = parse_qs(with_schema.query)
    assert query["search_path"] == ["s_1"]
    for key, values in parse_qs(original.query).items():
        assert query[key] == values
    other_db = urlsplit(with_database(dsn, "fresh_db"))
    assert other_db.path == "/fresh_db"
    assert (other_db.netloc, other_db.query) == (original.netloc, original.query)
