"""Upstream pools: instances, load balancing and passive outlier ejection.

Nothing here does I/O, and the clock and the random source are injected, so the
balancing and ejection rules are tested without waiting.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from tracseq_kit.asgi import HealthWord

__all__ = ["Instance", "Lease", "UpstreamPool"]

Clock = Callable[[], float]


@dataclass(eq=False)
class Instance:
    """One upstream instance and what the gateway knows about it.

    ``healthy`` is the verdict of the last active health check; ``ejected_until`` is
    set by passive outlier detection; ``outstanding`` counts requests in flight.
    """

    host: str
    port: int
    healthy: bool = True
    outstanding: int = 0
    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0
    requests: int = 0
    successes: int = 0
    failures: int = 0
    host_header: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        self.host_header = f"{self.host}:{self.port}".encode()

    @property
    def address(self) -> str:
        """``host:port``."""
        return f"{self.host}:{self.port}"

    def available(self, now: float) -> bool:
        """Healthy and not ejected at ``now``."""
        return self.healthy and self.ejected_until <= now


class Lease:
    """One request's hold on an instance: counted in ``outstanding`` while held.

    ``with pool.lease(inst):`` or ``async with pool.lease(inst):``; the count goes down
    however the block ends, so the balancer's view never drifts.
    """

    __slots__ = ("instance",)

    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    def __enter__(self) -> Instance:
        inst = self.instance
        inst.outstanding += 1
        inst.requests += 1
        return inst

    def __exit__(self, *exc_info: object) -> None:
        self.instance.outstanding -= 1

    async def __aenter__(self) -> Instance:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.instance.outstanding -= 1


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class UpstreamPool:
    """Instances of one upstream service with a balancer and outlier ejection.

    ``balancer`` is ``"round_robin"`` or ``"least_outstanding"`` (power of two random
    choices, picking the one with fewer requests in flight). After ``eject_after``
    consecutive failures an instance is ejected for ``eject_backoff`` seconds, doubled
    for each repeated ejection up to 8x; a success resets the count.
    """

    def __init__(
        self,
        name: str,
        addresses: Iterable[str] = (),
        *,
        balancer: Literal["round_robin", "least_outstanding"] = "least_outstanding",
        eject_after: int = 5,
        eject_backoff: float = 10.0,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.balancer = balancer
        self._eject_after = eject_after
        self._eject_backoff = eject_backoff
        self._clock = clock
        self._rng = rng or random.Random()
        self._rr = 0
        self.static: tuple[str, ...] = tuple(addresses)
        self.instances: tuple[Instance, ...] = ()
        self.set_addresses(self.static)

    def set_addresses(self, addresses: Iterable[str]) -> None:
        """Replace the instance list, keeping the state of instances that stay."""
        known = {inst.address: inst for inst in self.instances}
        fresh: list[Instance] = []
        seen: set[str] = set()
        for address in addresses:
            if address in seen:
                continue
            seen.add(address)
            inst = known.get(address)
            if inst is None:
                host, port = _split(address)
                inst = Instance(host, port)
            fresh.append(inst)
        self.instances = tuple(fresh)

    def pick(self, exclude: Instance | None = None) -> Instance | None:
        """Choose an available instance (not ``exclude`` when another exists), or None.

        When every instance is unhealthy or ejected, an ejected-but-healthy one is not
        used; None tells the caller to answer 503.
        """
        now = self._clock()
        instances = self.instances
        if len(instances) == 1 and exclude is None:  # the common single-instance pool
            only = instances[0]
            return only if only.healthy and only.ejected_until <= now else None
        candidates = [i for i in instances if i.available(now) and i is not exclude]
        if not candidates:
            if exclude is not None and exclude.available(now):
                return exclude
            return None
        if len(candidates) == 1:
            return candidates[0]
        if self.balancer == "round_robin":
            self._rr = (self._rr + 1) % len(candidates)
            return candidates[self._rr]
        n = len(candidates)
        i = self._rng.randrange(n)
        j = self._rng.randrange(n - 1)
        a, b = candidates[i], candidates[j + 1 if j >= i else j]  # two distinct choices
        return a if a.outstanding <= b.outstanding else b

    def lease(self, inst: Instance) -> Lease:
        """Hold ``inst`` for one request (see :class:`Lease`)."""
        return Lease(inst)

    def record_success(self, inst: Instance) -> None:
        """An exchange with ``inst`` succeeded: reset its failure streak."""
        inst.successes += 1
        inst.consecutive_failures = 0
        inst.ejections = 0 if inst.ejected_until <= self._clock() else inst.ejections

    def record_failure(self, inst: Instance) -> None:
        """An exchange with ``inst`` failed; eject it after too many in a row."""
        inst.failures += 1
        inst.consecutive_failures += 1
        if inst.consecutive_failures >= self._eject_after:
            inst.consecutive_failures = 0
            factor = min(2**inst.ejections, 8)
            inst.ejections += 1
            inst.ejected_until = self._clock() + self._eject_backoff * factor

    def now(self) -> float:
        """The pool's clock reading (monotonic seconds unless a clock was injected)."""
        return self._clock()

    def state(self) -> HealthWord:
        """``healthy`` (all available), ``degraded`` (some) or ``unhealthy`` (none)."""
        now = self._clock()
        up = sum(1 for i in self.instances if i.available(now))
        if self.instances and up == len(self.instances):
            return "healthy"
        return "degraded" if up else "unhealthy"
