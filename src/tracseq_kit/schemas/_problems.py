"""The shape of every TracSeq error response: RFC 9457 problem details."""

from __future__ import annotations

from pydantic import ConfigDict

from tracseq_kit.schemas._base import ResponseModel

__all__ = ["FieldProblem", "Problem"]


class FieldProblem(ResponseModel):
    """One invalid field of a request (the ``errors`` of a 422)."""

    field: str
    """Where, e.g. ``body.fields[0].name`` or ``query.limit``."""
    message: str
    type: str
    """The validator's error kind, e.g. ``missing``, ``string_too_short``."""


class Problem(ResponseModel):
    """An error response (``application/problem+json``, RFC 9457).

    ``request_id`` names the request in the servers' logs; ``errors`` lists the invalid
    fields of a 422. Other members a service adds are kept.
    """

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldProblem] | None = None
