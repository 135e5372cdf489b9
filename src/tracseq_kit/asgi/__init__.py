"""The ASGI base shared by the service chassis and the gateway, importable without FastAPI.

- ASGI type aliases: :data:`Scope`, :data:`Message`, :data:`Receive`, :data:`Send`,
  :data:`ASGIApp`;
- request ids: one acceptance rule (:data:`REQUEST_ID_PATTERN`, :func:`valid_request_id`),
  :func:`new_request_id`, and :class:`RequestIdMiddleware`;
- tracing: :class:`TracingMiddleware` (one ``SERVER`` span per request);
- errors: RFC 9457 problem documents (:func:`problem_body`, :func:`send_problem`) and
  :class:`ProblemDetailsMiddleware`, which turns a crash into a 500 problem;
- health: the words of an aggregated report (:data:`HealthWord`, :func:`worst`) and the
  probe answer (:func:`send_probe`, :data:`HEALTH_JSON`).

Every middleware here is pure ASGI (``__init__(app, **options)`` once, ``__call__`` per
request) and works in front of any ASGI application.
"""

from tracseq_kit.asgi._probes import HEALTH_JSON, HealthWord, send_json, send_probe, worst
from tracseq_kit.asgi._problem import (
    PROBLEM_CONTENT_TYPE,
    ProblemDetailsMiddleware,
    problem_body,
    request_id_extension,
    send_problem,
)
from tracseq_kit.asgi._request_id import (
    REQUEST_ID_PATTERN,
    RequestIdMiddleware,
    new_request_id,
    valid_request_id,
)
from tracseq_kit.asgi._tracing import TracingMiddleware
from tracseq_kit.asgi._types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "HEALTH_JSON",
    "PROBLEM_CONTENT_TYPE",
    "REQUEST_ID_PATTERN",
    "ASGIApp",
    "HealthWord",
    "Message",
    "ProblemDetailsMiddleware",
    "Receive",
    "RequestIdMiddleware",
    "Scope",
    "Send",
    "TracingMiddleware",
    "new_request_id",
    "problem_body",
    "request_id_extension",
    "send_json",
    "send_probe",
    "send_problem",
    "valid_request_id",
    "worst",
]
