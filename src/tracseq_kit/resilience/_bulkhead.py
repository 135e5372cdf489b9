"""Bulkhead: at most C concurrent calls, with a bounded wait for a permit."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import ParamSpec, TypeVar

import anyio

from tracseq_kit._exceptions import BulkheadFullError, ConfigurationError

__all__ = ["Bulkhead"]

P = ParamSpec("P")
T = TypeVar("T")


class Bulkhead:
    """Limits a dependency to ``max_concurrent`` calls at once.

    A call waits at most ``max_wait`` seconds for a permit (0: never wait) and then
    raises :class:`~tracseq_kit.BulkheadFullError`. Permits are released when the call
    ends in any way: success, error or cancellation. Use ``async with bulkhead:``,
    ``await bulkhead.call(fn, ...)`` or ``@bulkhead``.
    """

    def __init__(self, name: str, *, max_concurrent: int, max_wait: float = 0.0) -> None:
        if max_concurrent < 1:
            raise ConfigurationError(f"max_concurrent must be at least 1, got {max_concurrent!r}")
        if max_wait < 0:
            raise ConfigurationError(f"max_wait must be >= 0, got {max_wait!r}")
        self.name = name
        self.max_concurrent = max_concurrent
        self._max_wait = max_wait
        self._semaphore = anyio.Semaphore(max_concurrent)
        self.rejected = 0

    @property
    def in_use(self) -> int:
        """Permits currently held."""
        return self.max_concurrent - self._semaphore.value

    async def __aenter__(self) -> None:
        try:
            self._semaphore.acquire_nowait()
            return
        except anyio.WouldBlock:
            pass
        if self._max_wait > 0:
            with anyio.move_on_after(self._max_wait):
                await self._semaphore.acquire()
                return
        self.rejected += 1
        raise BulkheadFullError(
            f"bulkhead {self.name!r} is full ({self.max_concurrent} calls in flight)"
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._semaphore.release()

    async def call(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``await fn(*args, **kwargs)`` holding a permit."""
        async with self:
            return await fn(*args, **kwargs)

    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        """Decorate an async function so every call holds a permit."""

        @functools.wraps(fn)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await self.call(fn, *args, **kwargs)

        return wrapper
