"""HealthRegistry: aggregation, caching, timeouts, shared runs."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracseq_kit import ConfigurationError
from tracseq_kit.health import CallableCheck, CheckResult, HealthRegistry
from tracseq_kit.health._registry import aggregate

pytestmark = pytest.mark.anyio


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def result(status: str, critical: bool) -> CheckResult:
    return CheckResult("c", status, critical, "component", "status")  # type: ignore[arg-type]


@given(st.lists(st.tuples(st.sampled_from(["pass", "fail"]), st.booleans()), max_size=12))
def test_aggregation(outcomes: list[tuple[str, bool]]) -> None:
    results = tuple(result(s, c) for s, c in outcomes)
    status = aggregate(results)
    if any(s == "fail" and c for s, c in outcomes):
        assert status == "fail"
    elif any(s == "fail" for s, _ in outcomes):
        assert status == "warn"
    else:
        assert status == "pass"


async def test_critical_failure_fails_and_non_critical_degrades() -> None:
    registry = HealthRegistry("svc")
    registry.add("ok", lambda: True)
    registry.add("cache", lambda: False, critical=False)
    report = await registry.run()
    assert report.status == "warn" and report.http_status == 200

    async def broken() -> None:
        raise ConnectionError("refused")

    registry.add("db", broken)
    registry._entries["cache"].expires = 0  # force everything to rerun
    report = await registry.run()
    assert report.status == "fail" and report.http_status == 503
    db = next(r for r in report.checks if r.name == "db")
    assert db.output == "ConnectionError: refused"


@given(st.floats(0.1, 100), st.floats(0.01, 10), st.booleans())
def test_results_are_cached_for_their_ttl(ttl: float, failure_ttl: float, healthy: bool) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        calls = 0

        def check() -> bool:
            nonlocal calls
            calls += 1
            return healthy

        registry = HealthRegistry("svc", ttl=ttl, failure_ttl=failure_ttl, clock=clock)
        registry.add("dep", check)
        await registry.run()
        assert calls == 1
        window = ttl if healthy else failure_ttl
        clock.now = window * 0.99
        await registry.run()
        assert registry.cached() is not None
        assert calls == 1
        clock.now = window
        assert registry.cached() is None
        await registry.run()
        assert calls == 2

    anyio.run(scenario)


async def test_a_hanging_check_is_abandoned_at_its_timeout() -> None:
    registry = HealthRegistry("svc")

    async def hang() -> None:
        await anyio.sleep_forever()

    registry.add("stuck", hang, timeout=0.05)
    registry.add("blocking", lambda: __import__("time").sleep(5), timeout=0.05)
    with anyio.fail_after(1):
        report = await registry.run()
    assert report.status == "fail"
    assert {r.output for r in report.checks} == {"timed out after 0.05s"}


async def test_concurrent_callers_share_one_run() -> None:
    registry = HealthRegistry("svc")
    calls = 0
    gate = anyio.Event()

    async def slow() -> bool:
        nonlocal calls
        calls += 1
        await gate.wait()
        return True

    registry.add("dep", slow)
    reports = []

    async def ask() -> None:
        reports.append(await registry.run())

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert calls == 1
    assert all(r.status == "pass" for r in reports)


async def test_callable_check_values() -> None:
    assert await CallableCheck(lambda: 42)() == 42
    assert await CallableCheck(lambda: True)() is None

    async def async_value() -> int:
        return 7

    assert await CallableCheck(async_value)() == 7
    with pytest.raises(Exception, match="unhealthy"):
        await CallableCheck(lambda: False)()


def test_invalid_registrations() -> None:
    registry = HealthRegistry("svc")
    registry.add("a", lambda: True)
    with pytest.raises(ConfigurationError):
        registry.add("a", lambda: True)
    with pytest.raises(ConfigurationError):
        registry.add("bad:name", lambda: True)
    with pytest.raises(ConfigurationError):
        registry.add("b", lambda: True, timeout=0)
    with pytest.raises(ConfigurationError):
        HealthRegistry("")
