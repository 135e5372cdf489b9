"""The ``Idempotency-Key`` header for a service's writes, stored in PostgreSQL.

Follows the IETF draft "The Idempotency-Key HTTP Header Field": a client sends one key
per logical write and may repeat the request as often as it needs to; the write happens
once. The key is claimed and the response stored **in the handler's own transaction**,
so a write and its remembered response commit together or not at all::

    from tracseq_kit.service import Idempotent

    @router.post("/api/templates/{template_id}/publish")
    async def publish(template_id: str, db: Postgres, write: Idempotent) -> Template:
        async with db.acquire() as conn, conn.transaction():
            await write.begin(conn)         # a repeat answers here, with the first response
            template = await store.publish(conn, template_id)
            await write.remember(conn, template)
        return template

- a repeated key with the same request (method, path and body) gets the first response
  again (status, body, ``Location``), marked ``Idempotent-Replayed: true``;
- the same key with a different request is a 422;
- the same key while the first request is still running is a 409 with ``Retry-After``;
- keys expire after ``retention`` seconds and are purged;
- a request without the header runs as usual (unless ``required=True``: then a 400).

Keys are scoped per client (``scope`` of the request, by default the authenticated
subject), so two clients never collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from importlib.resources import files
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.encoders import jsonable_encoder
from starlette.exceptions import HTTPException
from starlette.responses import Response

from tracseq_kit._exceptions import ConfigurationError

__all__ = [
    "Idempotency",
    "IdempotencyReplay",
    "Idempotent",
    "IdempotentWrite",
    "idempotent_write",
]

log = logging.getLogger("tracseq_kit.service")

_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_SQL = files("tracseq_kit.service") / "sql"
_REMEMBERED_HEADERS = ("location", "content-location", "etag")


class IdempotencyReplay(Exception):
    """Raised by :meth:`IdempotentWrite.begin` for a repeated request; the service
    answers with the stored first response (``create_service`` installs the handler)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers
        self.body = body

    def response(self) -> Response:
        """The stored response, marked as replayed."""
        headers = {**self.headers, "idempotent-replayed": "true"}
        return Response(self.body, self.status, headers, media_type="application/json")


class Idempotency:
    """The ``Idempotency-Key`` support of one service (``create_service(idempotency=)``).

    ``resource`` names the PostgreSQL pool resource holding the keys (its table is
    created by a kit migration at startup); ``retention`` is how long a key is
    remembered (seconds, default a day); expired keys are purged every
    ``purge_interval`` seconds. ``required`` makes the header mandatory on the routes
    that use :data:`Idempotent` (400 without it). ``scope(request)`` returns the
    client's key space (default: the authenticated subject). Raises
    :class:`~tracseq_kit.ConfigurationError` for a non-positive retention or interval.
    """

    def __init__(
        self,
        *,
        resource: str = "postgres",
        retention: float = 86_400.0,
        purge_interval: float = 600.0,
        header: str = "Idempotency-Key",
        required: bool = False,
        scope: Callable[[Request], str] | None = None,
    ) -> None:
        if retention <= 0 or purge_interval <= 0:
            raise ConfigurationError("retention and purge_interval must be > 0 seconds")
        self.resource = resource
        self.retention = retention
        self.purge_interval = purge_interval
        self.header = header.lower()
        self.required = required
        self._scope = scope or _subject

    async def migrate(self, conn: Any) -> list[str]:
        """Create or upgrade the key table (kit migrations); returns those applied."""
        from tracseq_kit.db import apply_migrations

        return await apply_migrations(
            conn, _SQL / "idempotency", namespace="tracseq_kit.idempotency"
        )

    async def purge(self, pool: Any) -> int:
        """Delete expired keys now; returns how many."""
        status: str = await pool.execute(
            "DELETE FROM tracseq_idempotency WHERE expires_at <= now()"
        )
        return int(status.split()[-1])

    @contextlib.asynccontextmanager
    async def running(self, pool: Any) -> AsyncIterator[None]:
        """Migrate, then purge expired keys every ``purge_interval`` while the block runs."""
        async with pool.acquire() as conn:
            await self.migrate(conn)

        async def purge_forever() -> None:
            while True:
                await asyncio.sleep(self.purge_interval)
                try:
                    purged = await self.purge(pool)
                except Exception as exc:  # the database is away: try next round
                    log.warning("idempotency keys not purged: %s", exc)
                else:
                    if purged:
                        log.info("purged %d expired idempotency keys", purged)

        task = asyncio.create_task(purge_forever())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def write(self, request: Request, body: bytes) -> IdempotentWrite:
        """The :class:`IdempotentWrite` of ``request`` (the dependency calls this)."""
        raw = request.headers.get(self.header)
        if raw is None:
            if self.required:
                raise HTTPException(400, f"this request needs an {self.header} header")
            return IdempotentWrite(None, "", "", request, self)
        key = raw.strip()
        if len(key) >= 2 and key[0] == key[-1] == '"':  # the draft's structured string
            key = key[1:-1]
        if not _KEY.fullmatch(key):
            raise HTTPException(
                400, f"{self.header} must be 1-255 visible ASCII characters, got {raw!r}"
            )
        digest = hashlib.sha256()
        for part in (request.method, request.url.path, request.url.query):
            digest.update(part.encode())
            digest.update(b"\x00")
        digest.update(body)
        return IdempotentWrite(key, self._scope(request), digest.hexdigest(), request, self)


class IdempotentWrite:
    """One request's key: claim it with :meth:`begin`, store the answer with
    :meth:`remember`, both in the write's transaction. Without a key both do nothing."""

    __slots__ = ("_idempotency", "_request", "fingerprint", "key", "scope")

    def __init__(
        self,
        key: str | None,
        scope: str,
        fingerprint: str,
        request: Request,
        idempotency: Idempotency,
    ) -> None:
        self.key = key
        self.scope = scope
        self.fingerprint = fingerprint
        self._request = request
        self._idempotency = idempotency

    async def begin(self, conn: Any) -> None:
        """Claim the key in ``conn``'s open transaction.

        Raises :class:`IdempotencyReplay` (answered with the first response) for a
        repeat; a 409 problem with ``Retry-After`` while the first request still runs; a
        422 problem when the key was used for a different request;
        :class:`~tracseq_kit.ConfigurationError` outside a transaction.
        """
        if self.key is None:
            return
        if not conn.is_in_transaction():
            raise ConfigurationError("IdempotentWrite.begin needs an open transaction")
        claimed = await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 7013))",
            json.dumps([self.scope, self.key]),
        )
        if not claimed:
            raise HTTPException(
                409,
                "a request with this Idempotency-Key is still being processed; retry later",
                headers={"Retry-After": "1"},
            )
        stored = await conn.fetchrow(
            """SELECT fingerprint, status, headers, body FROM tracseq_idempotency
               WHERE scope = $1 AND key = $2 AND expires_at > now()""",
            self.scope,
            self.key,
        )
        if stored is None:
            return
        if stored["fingerprint"] != self.fingerprint:
            raise HTTPException(
                422, "this Idempotency-Key was already used for a different request"
            )
        raise IdempotencyReplay(stored["status"], json.loads(stored["headers"]), stored["body"])

    async def remember(
        self,
        conn: Any,
        result: Any,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Store the response ``result`` (what the handler returns) for repeats.

        ``status`` defaults to the route's status code; of ``headers``, ``Location``,
        ``Content-Location`` and ``ETag`` are stored.
        """
        if self.key is None:
            return
        route = self._request.scope.get("route")
        code = status or getattr(route, "status_code", None) or 200
        body = json.dumps(
            jsonable_encoder(result), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()
        kept = {
            k.lower(): v for k, v in (headers or {}).items() if k.lower() in _REMEMBERED_HEADERS
        }
        await conn.execute(
            """INSERT INTO tracseq_idempotency
                   (scope, key, fingerprint, status, headers, body, expires_at)
               VALUES ($1, $2, $3, $4, $5::jsonb, $6, now() + make_interval(secs => $7))
               ON CONFLICT (scope, key) DO UPDATE SET
                   fingerprint = excluded.fingerprint, status = excluded.status,
                   headers = excluded.headers, body = excluded.body,
                   created_at = now(), expires_at = excluded.expires_at""",
            self.scope,
            self.key,
            self.fingerprint,
            code,
            json.dumps(kept),
            body,
            self._idempotency.retention,
        )


def _subject(request: Request) -> str:
    state = getattr(request, "state", None)
    identity = getattr(state, "identity", None) if state is not None else None
    return str(getattr(identity, "subject", "") or "")


async def idempotent_write(request: Request) -> IdempotentWrite:
    """FastAPI dependency: the request's :class:`IdempotentWrite`.

    Needs ``create_service(idempotency=Idempotency(...))``; raises
    :class:`~tracseq_kit.ConfigurationError` otherwise.
    """
    idempotency: Idempotency | None = getattr(request.app.state, "idempotency", None)
    if idempotency is None:
        raise ConfigurationError(
            "the route uses Idempotent, but the service was created without "
            "create_service(idempotency=Idempotency(...))"
        )
    return idempotency.write(request, await request.body())


Idempotent = Annotated[IdempotentWrite, Depends(idempotent_write)]
"""A handler parameter: ``write: Idempotent`` (see the module docstring)."""
