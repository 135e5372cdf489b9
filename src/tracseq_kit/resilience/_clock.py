"""Clocks and the global test mode of the resilience primitives."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Clock = Callable[[], float]
"""A monotonic clock: a callable returning seconds as a float."""


class ManualClock:
    """A clock that only moves when told to, for deterministic tests.

    Call it to read the time; :meth:`advance` moves it forward. Shared by every
    primitive created while :func:`deterministic_mode` is active.
    """

    __slots__ = ("now",)

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds`` (must not be negative)."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self.now += seconds


_test_clock: ManualClock | None = None


def default_clock() -> Clock:
    """The clock new primitives use: the test clock in test mode, else ``time.monotonic``."""
    return _test_clock if _test_clock is not None else time.monotonic


def in_testing_mode() -> bool:
    """Whether :func:`deterministic_mode` is active."""
    return _test_clock is not None


@contextmanager
def deterministic_mode(*, clock: ManualClock | None = None) -> Iterator[ManualClock]:
    """Make resilience primitives deterministic inside the block.

    Breakers, retries and bulkheads created inside the block use one shared
    :class:`ManualClock` (yielded), and :class:`~tracseq_kit.resilience.Retry` stops
    sleeping between attempts (it advances the manual clock instead). Nothing waits on
    wall-clock time, so users' tests of code that uses the kit run instantly and
    reproducibly.
    """
    global _test_clock
    previous = _test_clock
    _test_clock = clock if clock is not None else ManualClock()
    try:
        yield _test_clock
    finally:
        _test_clock = previous
