"""Housekeeping while the service runs: forget what can no longer be used.

Every ``interval`` seconds: delete signing keys whose publication ended (their private
keys with them), device logins past their expiry, and refresh tokens past theirs. Each
step is a single indexed ``DELETE``; a failure (the database away) is logged and retried
next round. Rotations and startups drop keys too, so a key never outlives its time by
more than one round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from examples.auth_service import store
from examples.auth_service.keys import KeyRing

__all__ = ["clean_up", "running_housekeeping"]

log = logging.getLogger("examples.auth_service")


async def clean_up(pool: Any, ring: KeyRing, now: datetime) -> list[str]:
    """One round; the kids of the keys it dropped."""
    async with pool.acquire() as conn, conn.transaction():
        dropped = await ring.drop_expired(conn, now)
        await store.purge_device_codes(conn, now)
        await store.purge_refresh_tokens(conn, now)
    for kid in dropped:
        log.info("signing key %s dropped: every token it signed has expired", kid)
    return dropped


@contextlib.asynccontextmanager
async def running_housekeeping(
    pool: Any, ring: KeyRing, clock: Callable[[], float], *, interval: float = 300.0
) -> AsyncIterator[None]:
    """Run :func:`clean_up` every ``interval`` seconds while the block runs."""

    async def forever() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await clean_up(pool, ring, datetime.fromtimestamp(clock(), UTC))
            except Exception as exc:  # the database is away: next round
                log.warning("housekeeping skipped a round: %s", exc)

    task = asyncio.create_task(forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
