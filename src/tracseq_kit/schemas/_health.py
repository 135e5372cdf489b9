"""The ``/health`` document of a TracSeq service or of the gateway."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from tracseq_kit.schemas._base import ResponseModel

__all__ = ["HealthStatus"]


class HealthStatus(ResponseModel):
    """What ``GET /health`` says.

    A service answers ``service``, ``status`` (``healthy`` / ``degraded`` /
    ``unhealthy``) and ``checks`` by dependency; the gateway answers ``status``
    (the same words) and ``services`` by upstream pool.
    ``http_status`` is the HTTP status of the answer (503 when unhealthy).
    """

    status: str
    service: str | None = None
    version: str | None = None
    checks: dict[str, Any] = Field(default_factory=dict)
    services: dict[str, Any] = Field(default_factory=dict)
    http_status: int = 200

    @property
    def ok(self) -> bool:
        """True when everything reported is healthy."""
        return self.status in ("healthy", "pass")
