"""Context variables shared by the request-id middleware and the log formatter."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("tracseq_request_id", default=None)


def current_request_id() -> str | None:
    """Return the id of the request being served in this context, or ``None`` outside one."""
    return request_id_var.get()
