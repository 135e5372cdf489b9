"""The one rule for re-sending a request, as properties."""

from __future__ import annotations

from typing import get_args

from hypothesis import given
from hypothesis import strategies as st

from tracseq_kit._resend import IDEMPOTENT_METHODS, Failure, may_resend

METHODS = st.sampled_from(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE", "POST", "PATCH"])
FAILURES = st.sampled_from(get_args(Failure))


@given(METHODS, st.booleans(), FAILURES, st.booleans(), st.booleans())
def test_nothing_unsafe_is_ever_re_sent(
    method: str, keyed: bool, failure: Failure, budget: bool, replayable: bool
) -> None:
    allowed = may_resend(
        method, idempotency_key=keyed, failure=failure, budget=budget, replayable=replayable
    )
    if allowed:
        assert method in IDEMPOTENT_METHODS or keyed  # a write without a key: never
        assert failure != "timeout"  # it may still be running upstream
        assert budget
        assert replayable or failure == "not_sent"  # a body that left cannot come back


@given(METHODS, st.booleans(), st.sampled_from(["not_sent", "no_response", "bad_response"]))
def test_safe_requests_are_re_sent_when_the_budget_allows(
    method: str, keyed: bool, failure: Failure
) -> None:
    expected = method in IDEMPOTENT_METHODS or keyed
    assert may_resend(method, idempotency_key=keyed, failure=failure, budget=True) is expected


def test_bodyless_post_is_never_re_sent() -> None:
    for failure in get_args(Failure):
        assert not may_resend("POST", idempotency_key=False, failure=failure, budget=True)
