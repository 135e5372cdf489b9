"""In-memory rate-limit state with an injectable clock and idle-key eviction."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from tracseq_kit.ratelimit._policy import GCRA, Decision, Policy, SlidingWindow

__all__ = ["MemoryStore"]

# One microsecond of slack: float rounding must not reject traffic exactly at the rate.
_EPS = 1e-6


class MemoryStore:
    """Keeps limiter state in this process: one float per GCRA key, two counters per
    sliding-window key.

    A key whose state is back to "never seen" (GCRA bucket full again, sliding windows
    passed) is idle and is evicted by a sweep that runs at most every ``sweep_interval``
    seconds during decisions (or on :meth:`sweep`), so memory returns to its baseline
    after a period without traffic. ``clock`` is injectable for tests.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, sweep_interval: float = 10.0
    ) -> None:
        self._clock = clock
        self._gcra: dict[str, float] = {}
        self._sliding: dict[str, tuple[int, int, int]] = {}
        self._sweep_interval = sweep_interval
        self._next_sweep = clock() + sweep_interval
        self._windows: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._gcra) + len(self._sliding)

    def sweep(self) -> int:
        """Evict every idle key now; return how many were evicted."""
        now = self._clock()
        self._next_sweep = now + self._sweep_interval
        gone = [k for k, tat in self._gcra.items() if tat <= now]
        for k in gone:
            del self._gcra[k]
        windows = self._windows
        idle = [k for k, (index, _, _) in self._sliding.items() if (index + 2) * windows[k] <= now]
        for k in idle:
            del self._sliding[k]
            del windows[k]
        return len(gone) + len(idle)

    def decide(self, key: str, policies: Sequence[Policy], cost: int, consume: bool) -> Decision:
        """Decide all ``policies`` for ``key`` at once: consume from all or none."""
        now = self._clock()
        if now >= self._next_sweep:
            self.sweep()
        if len(policies) == 1 and type(policies[0]) is GCRA:
            return self._gcra_one(key, policies[0], cost, consume, now)
        gcra_writes: list[tuple[str, float]] = []
        sliding_writes: list[tuple[str, tuple[int, int, int], float]] = []
        best: Decision | None = None
        for policy in policies:
            pkey = f"{policy.name}\x00{key}"
            if isinstance(policy, GCRA):
                decision, tat = self._gcra_eval(pkey, policy, cost, now)
                gcra_writes.append((pkey, tat))
            else:
                decision, state = self._sliding_eval(pkey, policy, cost, now)
                sliding_writes.append((pkey, state, policy.window))
            if not decision.allowed:
                return decision
            if best is None or decision.remaining < best.remaining:
                best = decision
        if consume:  # all admitted: commit every policy at once
            for pkey, tat in gcra_writes:
                self._gcra[pkey] = tat
            for pkey, state, window in sliding_writes:
                self._sliding[pkey] = state
                self._windows[pkey] = window
        assert best is not None
        return best

    # ------------------------------------------------------------------ GCRA

    def _gcra_one(self, key: str, p: GCRA, cost: int, consume: bool, now: float) -> Decision:
        pkey = f"{p.name}\x00{key}"
        interval = p.period / p.limit
        tolerance = p.capacity * interval
        tat = self._gcra.get(pkey, now)
        if tat < now:
            tat = now
        new_tat = tat + cost * interval
        allow_at = new_tat - tolerance
        if allow_at - now > _EPS:
            return Decision(False, 0, tat - now, allow_at - now, p.name, p.capacity, p.period)
        if consume:
            self._gcra[pkey] = new_tat
        remaining = int((now - allow_at) / interval + 1e-9)
        return Decision(True, remaining, new_tat - now, 0.0, p.name, p.capacity, p.period)

    def _gcra_eval(self, pkey: str, p: GCRA, cost: int, now: float) -> tuple[Decision, float]:
        interval = p.period / p.limit
        tat = max(self._gcra.get(pkey, now), now)
        new_tat = tat + cost * interval
        allow_at = new_tat - p.capacity * interval
        if allow_at - now > _EPS:
            d = Decision(False, 0, tat - now, allow_at - now, p.name, p.capacity, p.period)
            return d, tat
        remaining = int((now - allow_at) / interval + 1e-9)
        return Decision(True, remaining, new_tat - now, 0.0, p.name, p.capacity, p.period), new_tat

    # ------------------------------------------------------------------ sliding window

    def _sliding_eval(
        self, pkey: str, p: SlidingWindow, cost: int, now: float
    ) -> tuple[Decision, tuple[int, int, int]]:
        window = p.window
        index = math.floor(now / window)
        cur_index, cur, prev = self._sliding.get(pkey, (index, 0, 0))
        if cur_index != index:
            prev = cur if cur_index == index - 1 else 0
            cur = 0
        elapsed = now / window - index
        weighted = prev * (1.0 - elapsed) + cur
        reset_after = (index + 1) * window - now
        if weighted + cost > p.limit:
            retry = _sliding_retry(p, prev, cur, cost, elapsed, reset_after)
            d = Decision(False, 0, reset_after, retry, p.name, p.limit, window)
            return d, (index, cur, prev)
        remaining = max(0, int(p.limit - weighted - cost))
        new = (index, cur + cost, prev)
        return Decision(True, remaining, reset_after, 0.0, p.name, p.limit, window), new


def _sliding_retry(
    p: SlidingWindow, prev: int, cur: int, cost: int, elapsed: float, reset_after: float
) -> float:
    """Seconds until ``cost`` more units fit, if nothing else is admitted meanwhile."""
    window = p.window
    if cur + cost > p.limit:
        # Not before the next window; there ``cur`` becomes the weighted previous.
        need = 1.0 - (p.limit - cost) / cur if cur else 0.0
        return reset_after + max(0.0, need) * window
    # Within this window, once prev's weight has decayed enough.
    need = 1.0 - (p.limit - cost - cur) / prev if prev else 0.0
    return max(0.0, (need - elapsed) * window)
