"""Deadlines: context-local, nested, enforced, and carried in headers."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracseq_kit import ConfigurationError, DeadlineExceededError
from tracseq_kit.resilience import (
    DEADLINE_HEADER,
    deadline,
    deadline_from_headers,
    deadline_to_headers,
    remaining,
)

pytestmark = pytest.mark.anyio


async def test_no_deadline_by_default() -> None:
    assert remaining() is None
    assert deadline_to_headers() == {}


async def test_deadline_cancels_the_block() -> None:
    with pytest.raises(DeadlineExceededError):
        with deadline(0.01):
            await anyio.sleep(5)
    assert remaining() is None


async def test_inner_deadline_cannot_extend_the_outer_one() -> None:
    with deadline(0.5):
        with deadline(100) as allowed:
            assert allowed is not None and allowed <= 0.5
            left = remaining()
            assert left is not None and left <= 0.5
        with deadline(0.1):
            assert (remaining() or 0) <= 0.1


async def test_deadline_follows_child_tasks() -> None:
    seen: list[float | None] = []

    async def child() -> None:
        seen.append(remaining())

    with deadline(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(child)
    assert seen[0] is not None and 0 < seen[0] <= 2


async def test_header_round_trip() -> None:
    with deadline(1.5):
        headers = deadline_to_headers()
    assert 1000 <= int(headers[DEADLINE_HEADER]) <= 1500
    assert deadline_from_headers({"X-Request-Deadline-Ms": "1500"}) == 1.5


def test_bad_headers_are_ignored_and_huge_ones_clamped() -> None:
    for bad in ("", "abc", "-5", "1e3", " ", "9" * 40):
        assert deadline_from_headers({DEADLINE_HEADER: bad}) is None
    assert deadline_from_headers({}) is None
    assert deadline_from_headers({DEADLINE_HEADER: "999999999"}, maximum=30) == 30


def test_negative_deadline_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        with deadline(-1):
            pass


@given(st.text(max_size=30))
def test_any_header_value_parses_to_none_or_a_bounded_value(value: str) -> None:
    parsed = deadline_from_headers({DEADLINE_HEADER: value}, maximum=60)
    assert parsed is None or 0 <= parsed <= 60
