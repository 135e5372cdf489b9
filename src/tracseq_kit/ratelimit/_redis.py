"""Redis rate-limit state: one Lua call per decision, batched into pipelines."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

from tracseq_kit._exceptions import ConfigurationError, DependencyUnavailableError
from tracseq_kit.ratelimit._policy import GCRA, Decision, Policy

__all__ = ["RedisStore"]

_SCRIPT = files("tracseq_kit.ratelimit").joinpath("lua/ratelimit.lua").read_bytes()
_SHA = hashlib.sha1(_SCRIPT).hexdigest()

_Pending = tuple[list[str], list[Any], Sequence[Policy], "asyncio.Future[Decision]"]


class RedisStore:
    """Keeps limiter state in Redis so every process shares the same limits.

    Each decision is one ``EVALSHA`` of ``ratelimit/lua/ratelimit.lua`` that checks
    every policy and consumes from all or none, using the Redis server's clock.
    Decisions requested concurrently are sent together in one pipelined round trip.
    Keys are ``<prefix>{<client key>}:<policy>``: all keys of one client share a hash
    tag, so they live in one Redis Cluster slot.

    ``timeout`` bounds each round trip. A failed or slow round trip raises
    :class:`~tracseq_kit.DependencyUnavailableError`; :class:`RateLimiter` turns that
    into its failure policy.
    """

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str = "tracseq:rl:",
        timeout: float = 0.1,
        max_batch: int = 1024,
    ) -> None:
        if timeout <= 0 or max_batch < 1:
            raise ConfigurationError("timeout must be positive and max_batch at least 1")
        self.redis = redis
        self.prefix = prefix
        self.timeout = timeout
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._flushing = False
        self.round_trips = 0

    def keys(self, key: str, policies: Sequence[Policy]) -> list[str]:
        """The Redis keys holding ``key``'s state under ``policies``."""
        safe = key.replace("{", "(").replace("}", ")")
        return [f"{self.prefix}{{{safe}}}:{p.name}" for p in policies]

    async def decide(
        self,
        key: str,
        policies: Sequence[Policy],
        cost: int,
        consume: bool,
        *,
        now_ms: float | None = None,
    ) -> Decision:
        """Decide all ``policies`` for ``key``; ``now_ms`` fixes the time (tests only)."""
        args: list[Any] = [1 if consume else 0, cost, "" if now_ms is None else repr(now_ms)]
        for p in policies:
            kind = "g" if type(p) is GCRA else "s"
            args += (kind, p.limit, p.period * 1000.0, p.capacity)
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._queue.append((self.keys(key, policies), args, policies, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().call_soon(self._start_flush)
        return await future

    def _start_flush(self) -> None:
        task = asyncio.get_running_loop().create_task(self._flush())
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _flush(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._send(batch)
        finally:
            self._flushing = False

    async def _send(self, batch: list[_Pending]) -> None:
        try:
            replies = await asyncio.wait_for(self._roundtrip(batch), self.timeout)
        except Exception as exc:
            error = DependencyUnavailableError(f"Redis rate-limit store failed: {exc!r}")
            for *_, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, _, policies, future), reply in zip(batch, replies, strict=True):
            if not future.done():
                future.set_result(_decision(reply, policies))

    async def _roundtrip(self, batch: list[_Pending]) -> list[Any]:
        self.round_trips += 1
        replies = await self._pipeline(batch)
        if any(_is_noscript(r) for r in replies):
            await self.redis.script_load(_SCRIPT)
            replies = await self._pipeline(batch)
        for r in replies:
            if isinstance(r, Exception):
                raise r
        return replies

    async def _pipeline(self, batch: list[_Pending]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for keys, args, _, _ in batch:
            pipe.evalsha(_SHA, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))


def _is_noscript(reply: Any) -> bool:
    from redis.exceptions import NoScriptError

    return isinstance(reply, NoScriptError)


def _decision(reply: list[Any], policies: Sequence[Policy]) -> Decision:
    allowed, remaining, reset_ms, retry_ms, index = reply
    p = policies[int(index) - 1]
    return Decision(
        bool(int(allowed)),
        int(remaining),
        max(0.0, float(reset_ms) / 1000.0),
        max(0.0, float(retry_ms) / 1000.0),
        p.name,
        p.capacity,
        p.period,
    )
