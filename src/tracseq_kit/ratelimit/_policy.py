"""Rate-limit policies and decisions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from tracseq_kit._exceptions import ConfigurationError

__all__ = ["GCRA", "Decision", "Policy", "SlidingWindow"]


@dataclass(frozen=True, slots=True)
class GCRA:
    """Generic cell rate algorithm: a token bucket of ``burst`` tokens refilled at
    ``limit`` per ``period`` seconds, stored as one timestamp per key.

    In any interval of ``t`` seconds it admits at most ``burst + limit * t / period``
    units, and it never rejects traffic that stays at or below the rate. ``burst``
    defaults to ``limit``.
    """

    name: str
    limit: int
    period: float
    burst: int | None = None

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.limit < 1 or not self.period > 0 or not math.isfinite(self.period):
            raise ConfigurationError(
                f"policy {self.name!r}: limit must be >= 1 and period a positive number"
            )
        if self.burst is not None and self.burst < 1:
            raise ConfigurationError(f"policy {self.name!r}: burst must be >= 1")

    @property
    def capacity(self) -> int:
        """The burst size: how many units may be taken at once."""
        return self.burst if self.burst is not None else self.limit

    @property
    def interval(self) -> float:
        """Seconds per unit at the steady rate."""
        return self.period / self.limit


@dataclass(frozen=True, slots=True)
class SlidingWindow:
    """Sliding-window counter: at most ``limit`` units per ``window`` seconds, estimated
    from the current and previous fixed windows (the previous one weighted by how much
    of it the sliding window still covers).

    Error bound: a fixed window never admits more than ``limit``; any sliding interval
    of ``window`` seconds admits at most ``limit + previous * f`` where ``f`` is the
    elapsed fraction of the current window, so always fewer than ``2 * limit`` and
    exactly ``limit`` when traffic is spread evenly. It needs two counters per key.
    """

    name: str
    limit: int
    window: float

    def __post_init__(self) -> None:
        _check_name(self.name)
        if self.limit < 1 or not self.window > 0 or not math.isfinite(self.window):
            raise ConfigurationError(
                f"policy {self.name!r}: limit must be >= 1 and window a positive number"
            )

    @property
    def capacity(self) -> int:
        """The most units one window admits."""
        return self.limit

    @property
    def period(self) -> float:
        """The window length, in seconds."""
        return self.window


Policy = GCRA | SlidingWindow


class Decision(NamedTuple):
    """The answer for one request.

    ``remaining`` is what the tightest policy still admits; ``reset_after`` the seconds
    until that policy is back to full quota; ``retry_after`` the seconds until the same
    request would be admitted (0 when allowed); ``policy`` the name of the tightest
    (when allowed) or the violated (when rejected) policy.
    """

    allowed: bool
    remaining: int
    reset_after: float
    retry_after: float
    policy: str
    limit: int
    period: float


def _check_name(name: str) -> None:
    if not name or any(c in name for c in '",;\\ \t\r\n'):
        raise ConfigurationError(
            f"policy name {name!r} must be non-empty without quotes, commas, semicolons "
            "or spaces (it appears in RateLimit headers)"
        )
