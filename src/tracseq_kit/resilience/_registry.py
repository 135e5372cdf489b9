"""Breakers by name, so every part of a process shares one breaker per dependency."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.resilience._breaker import CircuitBreaker

__all__ = ["CircuitBreakerRegistry"]


class CircuitBreakerRegistry:
    """Creates breakers on first use and returns the same one for the same name.

    ``defaults`` are options applied to every breaker the registry creates; options
    given to :meth:`get` override them on creation. Asking again for an existing name
    with different options raises :class:`~tracseq_kit.ConfigurationError` rather than
    silently returning a breaker configured otherwise.
    """

    def __init__(self, **defaults: Any) -> None:
        self._defaults = defaults
        self._breakers: dict[str, tuple[CircuitBreaker, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, name: str, **options: Any) -> CircuitBreaker:
        """Return the breaker called ``name``, creating it with ``options`` if new."""
        entry = self._breakers.get(name)
        if entry is None:
            with self._lock:
                entry = self._breakers.get(name)
                if entry is None:
                    merged = {**self._defaults, **options}
                    entry = (CircuitBreaker(name, **merged), options)
                    self._breakers[name] = entry
                    return entry[0]
        if options and options != entry[1]:
            raise ConfigurationError(f"circuit breaker {name!r} already exists with other options")
        return entry[0]

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter([entry[0] for entry in self._breakers.values()])

    def __len__(self) -> int:
        return len(self._breakers)
