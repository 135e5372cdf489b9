"""The context variable holding the id of the request being served."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["request_id_var"]

request_id_var: ContextVar[str | None] = ContextVar("tracseq_request_id", default=None)
