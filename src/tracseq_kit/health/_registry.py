"""The health registry: named checks with timeouts, run concurrently, cached."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import anyio

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.health._checks import CallableCheck, HealthCheck

__all__ = ["CheckResult", "HealthRegistry", "HealthReport", "Status"]

Status = Literal["pass", "warn", "fail"]
"""IETF health status of one check or of the whole service."""

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one run of one check."""

    name: str
    status: Status
    critical: bool
    component_type: str
    measurement: str
    observed_value: object = None
    observed_unit: str | None = None
    output: str | None = None
    duration_ms: float = 0.0
    time: str = ""


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Every check's latest result and the aggregate status.

    ``status`` is ``fail`` if any critical check failed, ``warn`` if only
    non-critical checks failed, else ``pass``.
    """

    service: str
    status: Status
    checks: tuple[CheckResult, ...] = field(default_factory=tuple)

    @property
    def http_status(self) -> int:
        """200 for pass and warn, 503 for fail."""
        return 503 if self.status == "fail" else 200


@dataclass(slots=True)
class _Entry:
    check: HealthCheck
    timeout: float
    critical: bool
    result: CheckResult | None = None
    expires: float = -math.inf
    running: anyio.Event | None = None


def aggregate(results: tuple[CheckResult, ...]) -> Status:
    """Combine results: any critical fail → fail; other fails → warn; else pass."""
    status: Status = "pass"
    for r in results:
        if r.status == "fail":
            if r.critical:
                return "fail"
            status = "warn"
    return status


class HealthRegistry:
    """Named health checks for one service, each with its own timeout.

    :meth:`run` runs every check whose cached result has expired, concurrently; a result
    is reused for ``ttl`` seconds after a pass and ``failure_ttl`` seconds after a
    failure, so a flapping dependency is re-checked sooner. Concurrent callers share
    one run of a check. A check that hangs is abandoned at its timeout and reported as
    failed, so no endpoint waits longer than the slowest timeout.

    A failed *critical* check makes the service ``fail`` (HTTP 503); a failed
    non-critical one makes it ``warn`` (still 200). :meth:`asgi_app` serves the
    endpoints. Raises :class:`~tracseq_kit.ConfigurationError` for invalid options or a
    duplicate check name.
    """

    def __init__(
        self,
        service: str,
        *,
        ttl: float = 5.0,
        failure_ttl: float = 1.0,
        timeout: float = 2.0,
        clock: Clock = time.monotonic,
    ) -> None:
        if not service:
            raise ConfigurationError("a health registry needs the service's name")
        if ttl < 0 or failure_ttl < 0 or timeout <= 0:
            raise ConfigurationError("ttl and failure_ttl must be >= 0 and timeout > 0")
        self.service = service
        self._ttl = ttl
        self._failure_ttl = failure_ttl
        self._timeout = timeout
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._started = False

    # ------------------------------------------------------------------ setup

    def add(
        self,
        name: str,
        check: HealthCheck | Callable[[], object] | Callable[[], Awaitable[object]],
        *,
        timeout: float | None = None,
        critical: bool = True,
    ) -> None:
        """Register ``check`` under ``name``.

        ``check`` is a :class:`HealthCheck` (such as :class:`PostgresCheck`) or any
        callable (wrapped in :class:`CallableCheck`). ``timeout`` defaults to the
        registry's. Non-critical checks only degrade the service.
        """
        if not name or ":" in name:
            raise ConfigurationError(f"invalid health check name {name!r} (no ':' allowed)")
        if name in self._entries:
            raise ConfigurationError(f"health check {name!r} is already registered")
        if timeout is not None and timeout <= 0:
            raise ConfigurationError(f"timeout of {name!r} must be positive")
        if not isinstance(check, HealthCheck):
            check = CallableCheck(check)
        self._entries[name] = _Entry(check, timeout or self._timeout, critical)

    def add_check(self, name: str, check: Callable[[], Awaitable[object]]) -> None:
        """Register a critical readiness check (the service chassis calls this)."""
        self.add(name, check)

    def mark_started(self) -> None:
        """Record that startup finished: ``/startupz`` turns 200, readiness is checked."""
        self._started = True

    @property
    def started(self) -> bool:
        """Whether :meth:`mark_started` was called."""
        return self._started

    @property
    def names(self) -> tuple[str, ...]:
        """The registered check names, in registration order."""
        return tuple(self._entries)

    def asgi_app(self, **options: Any) -> Any:
        """The ASGI app serving ``/livez``, ``/readyz``, ``/startupz`` and ``/health``.

        ``options`` go to :class:`~tracseq_kit.health.HealthEndpoints`.
        """
        from tracseq_kit.health._asgi import HealthEndpoints

        return HealthEndpoints(self, **options)

    async def aclose(self) -> None:
        """Release connections held by checks that keep one."""
        for entry in self._entries.values():
            close = getattr(entry.check, "aclose", None)
            if close is not None:
                await close()

    # ------------------------------------------------------------------ running

    async def run(self) -> HealthReport:
        """Run stale checks concurrently and return every check's latest result."""
        now = self._clock()
        stale = [(n, e) for n, e in self._entries.items() if e.expires <= now]
        if stale:
            async with anyio.create_task_group() as tg:
                for name, entry in stale:
                    tg.start_soon(self._run_one, name, entry)
        results = tuple(e.result for e in self._entries.values() if e.result is not None)
        return HealthReport(self.service, aggregate(results), results)

    def cached(self) -> HealthReport | None:
        """The last report if no check has expired since, without running anything."""
        now = self._clock()
        results = []
        for entry in self._entries.values():
            if entry.result is None or entry.expires <= now:
                return None
            results.append(entry.result)
        res = tuple(results)
        return HealthReport(self.service, aggregate(res), res)

    async def _run_one(self, name: str, entry: _Entry) -> None:
        if entry.running is not None:
            await entry.running.wait()
            return
        entry.running = anyio.Event()
        try:
            result = await self._execute(name, entry)
            entry.result = result
            ttl = self._ttl if result.status == "pass" else self._failure_ttl
            entry.expires = self._clock() + ttl
        finally:
            entry.running.set()
            entry.running = None

    async def _execute(self, name: str, entry: _Entry) -> CheckResult:
        check = entry.check
        start = time.perf_counter()
        value: object = None
        output: str | None = None
        status: Status = "pass"
        with anyio.move_on_after(entry.timeout) as scope:
            try:
                value = await check()
            except Exception as exc:
                status = "fail"
                output = f"{type(exc).__name__}: {exc}"[:500]
        if scope.cancelled_caught:
            status = "fail"
            output = f"timed out after {entry.timeout:g}s"
        return CheckResult(
            name=name,
            status=status,
            critical=entry.critical,
            component_type=check.component_type,
            measurement=check.measurement,
            observed_value=value if status == "pass" else None,
            observed_unit=check.observed_unit,
            output=output,
            duration_ms=round((time.perf_counter() - start) * 1000, 3),
            time=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        )
