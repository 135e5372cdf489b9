"""The request id of the current context, for logs (set by the request-id middleware)."""

from __future__ import annotations

from tracseq_kit.asgi._context import request_id_var

__all__ = ["current_request_id", "request_id_var"]


def current_request_id() -> str | None:
    """Return the id of the request being served in this context, or ``None`` outside one."""
    return request_id_var.get()
