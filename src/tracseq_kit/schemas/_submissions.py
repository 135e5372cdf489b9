"""The result of validating a sample sheet against a template."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from tracseq_kit.schemas._base import ResponseModel

__all__ = ["SheetProblem", "SubmissionReport"]


class SheetProblem(ResponseModel):
    """One problem: where (``row`` is the 1-based data row, ``None`` for the header;
    ``column`` the header text) and which ``rule`` failed, in words in ``message``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    row: int | None
    column: str | None
    rule: str
    message: str


class SubmissionReport(ResponseModel):
    """Every problem of a sheet, and its normalised typed rows when it is valid."""

    valid: bool
    rows_checked: int
    header_problems: list[SheetProblem] = Field(default_factory=list)
    problems: list[SheetProblem] = Field(default_factory=list)
    rows: list[dict[str, Any]] | None = None
