"""``create_service()``: a FastAPI application with the kit's chassis wired in."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

import anyio
from fastapi import FastAPI
from opentelemetry.trace import TracerProvider
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from tracseq_kit._exceptions import ConfigurationError, DependencyUnavailableError
from tracseq_kit.asgi import ProblemDetailsMiddleware, RequestIdMiddleware, TracingMiddleware
from tracseq_kit.asgi._types import ASGIApp, Receive, Scope, Send
from tracseq_kit.health import HealthRegistry
from tracseq_kit.identity import (
    ANONYMOUS,
    AssertionVerifier,
    Identity,
    IdentityMiddleware,
    KeyFile,
    parse_public_keys,
)
from tracseq_kit.service._access_log import AccessLogMiddleware
from tracseq_kit.service._body_limit import BodySizeLimitMiddleware
from tracseq_kit.service._contract import install_contract
from tracseq_kit.service._errors import install_exception_handlers
from tracseq_kit.service._health import HEALTH_PATHS, HealthProvider
from tracseq_kit.service._idempotency import Idempotency
from tracseq_kit.service._metrics import MetricsEndpoint, MetricsMiddleware
from tracseq_kit.service._resources import Resource, Resources
from tracseq_kit.service._text import RejectNulMiddleware
from tracseq_kit.settings import ServiceSettings
from tracseq_kit.telemetry._logging import configure_logging
from tracseq_kit.telemetry._tracing import configure_telemetry

logger = logging.getLogger("tracseq_kit.service")

_FASTAPI_PARAMETERS = frozenset(inspect.signature(FastAPI).parameters)
_NATIVE_TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False}

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service(
    settings: ServiceSettings | None = None,
    *,
    resources: Sequence[Resource] = (),
    health: HealthProvider | None = None,
    lifespan: Lifespan | None = None,
    title: str | None = None,
    version: str = "0.1.0",
    tracer_provider: TracerProvider | None = None,
    configure_logs: bool = True,
    idempotency: Idempotency | None = None,
    **fastapi_options: Any,
) -> FastAPI:
    """Return a FastAPI app with lifespan, health, metrics, tracing, logs and errors wired in.

    Add routes to the returned app as usual. Per request, outermost first: request id,
    server span, metrics, access log, CORS (when ``settings.cors_origins`` is set),
    problem+json for crashes, body size limit, NUL-free text (a NUL in the query, path
    or a JSON body is a 422: PostgreSQL stores none). Every error response is
    ``application/problem+json`` with the request id: 400 malformed JSON, 404, 405, 413,
    422 with field paths, 500 without a traceback.

    Startup opens ``resources`` in order (each readiness-checked under its name), then
    enters ``lifespan`` if given, then marks startup complete on ``health``. The open
    resources are ``app.state.resources[name]``. Shutdown waits up to
    ``settings.shutdown_timeout`` for in-flight requests, then closes everything in
    reverse order. A resource that fails to open raises ``DependencyUnavailableError``
    naming it (the ones already open are closed).

    ``idempotency`` enables the ``Idempotency-Key`` header on routes that take
    :data:`~tracseq_kit.service.Idempotent` (its table is migrated on the resource it
    names once the resources are open, and expired keys are purged while it runs).

    The OpenAPI document declares, on every operation, the problem+json answers it can
    give (see :func:`~tracseq_kit.service.problems`), one schema per model for input and
    output (FastAPI's ``separate_input_output_schemas=False``), which client generators
    need, and the handler's name as each operation id. A path with a trailing slash it
    does not serve is a 404, not a redirect.

    ``settings`` defaults to ``ServiceSettings()`` (``TRACSEQ_*`` variables). Logging is
    configured from it unless ``configure_logs=False``; tracing uses ``tracer_provider``
    or the providers of :func:`~tracseq_kit.telemetry.configure_telemetry`. ``health``
    defaults to a :class:`~tracseq_kit.health.HealthRegistry` named after the service.
    Identity: each request's verified caller (the gateway's assertion, checked with the
    ``identity_keys`` or ``identity_keys_file`` setting for ``identity_audience``) is
    ``request.state.identity``; handlers take it with
    :data:`~tracseq_kit.service.CurrentIdentity` or
    :func:`~tracseq_kit.service.require_scopes` (401/403 problem+json).
    Remaining keyword arguments go to ``FastAPI``;
    FastAPI's own OpenTelemetry (``telemetry=``, FastAPI 0.16x) is switched off unless
    given, since the chassis already opens the server span.
    Raises ``ConfigurationError`` for duplicate resource names.
    """
    settings = settings if settings is not None else ServiceSettings()
    names = [r.name for r in resources]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"resource names must be unique, got {names}")
    if configure_logs:
        configure_logging(
            service=settings.service_name, level=settings.log_level, fmt=settings.log_format
        )
    if tracer_provider is None:
        tracer_provider = configure_telemetry(service_name=settings.service_name).tracer_provider
    health = health if health is not None else HealthRegistry(settings.service_name)
    tracker = _InFlight()
    quiet_paths = [*HEALTH_PATHS, *([settings.metrics_path] if settings.metrics_path else [])]

    middleware = [
        Middleware(_TrackInFlight, tracker=tracker),
        Middleware(RequestIdMiddleware),
        Middleware(TracingMiddleware, tracer_provider=tracer_provider, excluded_paths=quiet_paths),
        Middleware(MetricsMiddleware),
        Middleware(
            IdentityMiddleware, verifier=_verifier(settings), anonymous=_anonymous(settings)
        ),
    ]
    if settings.access_log:
        middleware.append(Middleware(AccessLogMiddleware, excluded_paths=quiet_paths))
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_credentials=settings.cors_allow_credentials,
                allow_methods=settings.cors_allow_methods,
                allow_headers=settings.cors_allow_headers,
                expose_headers=["X-Request-ID"],
            )
        )
    middleware.append(Middleware(ProblemDetailsMiddleware))
    middleware.append(Middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes))
    middleware.append(Middleware(RejectNulMiddleware))
    health_app = health.asgi_app()
    endpoints: dict[str, ASGIApp] = dict.fromkeys(HEALTH_PATHS, health_app)
    if settings.metrics_path:
        endpoints[settings.metrics_path] = MetricsEndpoint()
    middleware.append(Middleware(_FixedEndpoints, endpoints=endpoints))

    opened = Resources()

    @asynccontextmanager
    async def chassis_lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for resource in resources:
                try:
                    value = await stack.enter_async_context(resource.open())
                except Exception as exc:
                    raise DependencyUnavailableError(
                        f"could not open resource {resource.name!r}: {exc}"
                    ) from exc
                stack.callback(logger.info, "closing resource %s", resource.name)
                opened._add(resource.name, value)
                if resource.check is not None:
                    health.add_check(resource.name, partial(resource.check, value))
                logger.info("opened resource %s", resource.name)
            stack.callback(opened._clear)
            if idempotency is not None:
                await stack.enter_async_context(idempotency.running(opened[idempotency.resource]))
            if lifespan is not None:
                await stack.enter_async_context(lifespan(app))
            health.mark_started()
            logger.info("service %s started", settings.service_name)
            try:
                yield
            finally:
                drained = await tracker.drain(settings.shutdown_timeout)
                if not drained:
                    logger.warning(
                        "%d requests still in flight after %.1fs; closing resources anyway",
                        tracker.count,
                        settings.shutdown_timeout,
                    )

    if "telemetry" in _FASTAPI_PARAMETERS:
        # FastAPI's native OpenTelemetry would open a second server span per request once a
        # global provider exists; the chassis's own middleware covers Starlette apps too.
        fastapi_options.setdefault("telemetry", _NATIVE_TELEMETRY_OFF)
    # one schema per model: generators stop on FastAPI's "-Input"/"-Output" twins
    fastapi_options.setdefault("separate_input_output_schemas", False)
    # an API answers the URL it was asked (404), not a redirect nobody documented
    fastapi_options.setdefault("redirect_slashes", False)
    # operation ids are the handlers' names: what a generated client's methods are called
    fastapi_options.setdefault("generate_unique_id_function", _operation_id)
    app = FastAPI(
        title=title or settings.service_name,
        version=version,
        lifespan=chassis_lifespan,
        middleware=middleware,
        **fastapi_options,
    )
    install_exception_handlers(app)
    install_contract(app)
    app.state.idempotency = idempotency
    app.state.settings = settings
    app.state.resources = opened
    app.state.health = health
    return app


def _verifier(settings: ServiceSettings) -> AssertionVerifier | KeyFile | None:
    audience = settings.identity_audience or settings.service_name
    if settings.identity_keys_file:
        return KeyFile(settings.identity_keys_file, audience=audience)
    if settings.identity_keys:
        return AssertionVerifier(parse_public_keys(settings.identity_keys), audience=audience)
    if not settings.allow_anonymous:
        logger.warning(
            "no identity keys (%s): no request has an identity, and operations that need "
            "one answer 401",
            type(settings).env_name("identity_keys"),
        )
    return None


def _anonymous(settings: ServiceSettings) -> Identity | None:
    if not settings.allow_anonymous:
        return None
    logger.warning("anonymous access is on: requests without an identity hold every scope")
    return ANONYMOUS


def _operation_id(route: Any) -> str:
    return str(route.name)


class _FixedEndpoints:
    """Serve health and metrics paths by exact match in front of the router.

    Cheaper than router entries (which every request would try before the service's own
    routes) and never shadowed by a service route such as ``/{name}``.
    """

    def __init__(self, app: ASGIApp, *, endpoints: dict[str, ASGIApp]) -> None:
        self.app = app
        self._endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            endpoint = self._endpoints.get(scope["path"])
            if endpoint is not None:
                scope["route"] = scope["path"]
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _InFlight:
    def __init__(self) -> None:
        self.count = 0
        self._idle: anyio.Event | None = None

    def enter(self) -> None:
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0 and self._idle is not None:
            self._idle.set()

    async def drain(self, bound: float) -> bool:
        if self.count == 0:
            return True
        self._idle = anyio.Event()
        with anyio.move_on_after(bound):
            await self._idle.wait()
        return self.count == 0


class _TrackInFlight:
    def __init__(self, app: ASGIApp, *, tracker: _InFlight) -> None:
        self.app = app
        self._tracker = tracker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self._tracker.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self._tracker.leave()
