"""Sliding windows of call outcomes for the circuit breaker.

Both windows keep running totals so recording an outcome is O(1); the breaker only
asks for rates after a failure or a slow call, since a fast success can never raise
either rate.
"""

from __future__ import annotations

from dataclasses import dataclass

SUCCESS = 0
FAILURE = 1
SLOW_SUCCESS = 2
SLOW_FAILURE = 3


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """Calls, failures and slow calls currently in a window."""

    calls: int
    failures: int
    slow: int


class CountWindow:
    """The outcomes of the last ``size`` calls, in a ring buffer."""

    __slots__ = ("_buf", "_calls", "_failures", "_pos", "_size", "_slow")

    def __init__(self, size: int) -> None:
        self._size = size
        self._buf = bytearray(size)
        self._pos = 0
        self._calls = 0
        self._failures = 0
        self._slow = 0

    def record(self, outcome: int, now: float) -> None:
        pos = self._pos
        if self._calls == self._size:
            old = self._buf[pos]
            self._failures -= old & 1
            self._slow -= old >> 1
        else:
            self._calls += 1
        self._buf[pos] = outcome
        self._failures += outcome & 1
        self._slow += outcome >> 1
        pos += 1
        self._pos = 0 if pos == self._size else pos

    def record_successes(self, count: int) -> None:
        """Record ``count`` fast successes at once (cost O(min(count, size)))."""
        if count >= self._size:
            self._buf = bytearray(self._size)
            self._pos = 0
            self._calls = self._size
            self._failures = self._slow = 0
            return
        for _ in range(count):
            self.record(SUCCESS, 0.0)

    def totals(self, now: float) -> WindowTotals:
        return WindowTotals(self._calls, self._failures, self._slow)

    def reset(self) -> None:
        self._pos = self._calls = self._failures = self._slow = 0


class TimeWindow:
    """The outcomes of the last ``seconds`` seconds, in ``buckets`` time buckets.

    The window's edge moves one bucket at a time, so it covers between
    ``seconds - seconds/buckets`` and ``seconds`` of history.
    """

    __slots__ = ("_calls", "_epochs", "_failures", "_n", "_slow", "_width")

    def __init__(self, seconds: float, buckets: int) -> None:
        self._n = buckets
        self._width = seconds / buckets
        self._epochs = [-1] * buckets
        self._calls = [0] * buckets
        self._failures = [0] * buckets
        self._slow = [0] * buckets

    def record(self, outcome: int, now: float) -> None:
        epoch = int(now / self._width)
        i = epoch % self._n
        if self._epochs[i] != epoch:
            self._epochs[i] = epoch
            self._calls[i] = self._failures[i] = self._slow[i] = 0
        self._calls[i] += 1
        self._failures[i] += outcome & 1
        self._slow[i] += outcome >> 1

    def totals(self, now: float) -> WindowTotals:
        oldest = int(now / self._width) - self._n + 1
        calls = failures = slow = 0
        for i in range(self._n):
            if self._epochs[i] >= oldest:
                calls += self._calls[i]
                failures += self._failures[i]
                slow += self._slow[i]
        return WindowTotals(calls, failures, slow)

    def reset(self) -> None:
        self._epochs = [-1] * self._n
