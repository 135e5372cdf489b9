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
        # One dict per policy name: key -> theoretical arrival time (GCRA) or
        # (window index, current count, previous count) (sliding window).
        self._gcra: dict[str, dict[str, float]] = {}
        self._sliding: dict[str, tuple[float, dict[str, tuple[int, int, int]]]] = {}
        self._sweep_interval = sweep_interval
        self.next_sweep = clock() + sweep_interval

    def __len__(self) -> int:
        return sum(len(d) for d in self._gcra.values()) + sum(
            len(d) for _, d in self._sliding.values()
        )

    def gcra_states(self, policy: GCRA) -> dict[str, float]:
        """The per-key state dict of ``policy`` (for the limiter's fast path)."""
        return self._gcra.setdefault(policy.name, {})

    def sweep(self) -> int:
        """Evict every idle key now; return how many were evicted."""
        now = self._clock()
        self.next_sweep = now + self._sweep_interval
        evicted = 0
        for states in self._gcra.values():
            gone = [k for k, tat in states.items() if tat <= now]
            for k in gone:
                del states[k]
            evicted += len(gone)
        for window, wstates in self._sliding.values():
            idle = [k for k, (index, _, _) in wstates.items() if (index + 2) * window <= now]
            for k in idle:
                del wstates[k]
            evicted += len(idle)
        return evicted

    def decide(self, key: str, policies: Sequence[Policy], cost: int, consume: bool) -> Decision:
        """Decide all ``policies`` for ``key`` at once: consume from all or none."""
        now = self._clock()
        if now >= self.next_sweep:
            self.sweep()
        if len(policies) == 1 and type(policies[0]) is GCRA:
            return self._gcra_one(key, policies[0], cost, consume, now)
        gcra_writes: list[tuple[dict[str, float], float]] = []
        sliding_writes: list[tuple[dict[str, tuple[int, int, int]], tuple[int, int, int]]] = []
        best: Decision | None = None
        for policy in policies:
            if isinstance(policy, GCRA):
                states = self.gcra_states(policy)
                decision, tat = self._gcra_eval(states.get(key, now), policy, cost, now)
                gcra_writes.append((states, tat))
            else:
                wstates = self._sliding.setdefault(policy.name, (policy.window, {}))[1]
                decision, state = self._sliding_eval(wstates.get(key), policy, cost, now)
                sliding_writes.append((wstates, state))
            if not decision.allowed:
                return decision
            if best is None or decision.remaining < best.remaining:
                best = decision
        if consume:  # all admitted: commit every policy at once
            for states, tat in gcra_writes:
                states[key] = tat
            for wstates, state in sliding_writes:
                wstates[key] = state
        assert best is not None
        return best

    # ------------------------------------------------------------------ GCRA

    def _gcra_one(self, key: str, p: GCRA, cost: int, consume: bool, now: float) -> Decision:
        states = self.gcra_states(p)
        interval = p.period / p.limit
        tolerance = p.capacity * interval
        tat = states.get(key, now)
        if tat < now:
            tat = now
        new_tat = tat + cost * interval
        allow_at = new_tat - tolerance
        if allow_at - now > _EPS:
            return Decision(False, 0, tat - now, allow_at - now, p.name, p.capacity, p.period)
        if consume:
            states[key] = new_tat
        remaining = int((now - allow_at) / interval + 1e-9)
        return Decision(True, remaining, new_tat - now, 0.0, p.name, p.capacity, p.period)

    def _gcra_eval(self, tat: float, p: GCRA, cost: int, now: float) -> tuple[Decision, float]:
        interval = p.period / p.limit
        tat = max(tat, now)
        new_tat = tat + cost * interval
        allow_at = new_tat - p.capacity * interval
        if allow_at - now > _EPS:
            d = Decision(False, 0, tat - now, allow_at - now, p.name, p.capacity, p.period)
            return d, tat
        remaining = int((now - allow_at) / interval + 1e-9)
        return Decision(True, remaining, new_tat - now, 0.0, p.name, p.capacity, p.period), new_tat

    # ------------------------------------------------------------------ sliding window

    def _sliding_eval(
        self, state: tuple[int, int, int] | None, p: SlidingWindow, cost: int, now: float
    ) -> tuple[Decision, tuple[int, int, int]]:
        window = p.window
        index = math.floor(now / window)
        cur_index, cur, prev = state if state is not None else (index, 0, 0)
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
