"""Projections: read models kept from the store's global feed, with a checkpoint each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel

from tracseq_kit._exceptions import ConfigurationError
from tracseq_kit.events import EventRegistry
from tracseq_kit.eventsourcing._types import RecordedEvent

if TYPE_CHECKING:
    from tracseq_kit.eventsourcing._postgres import PostgresEventStore

__all__ = ["Projection", "handles", "handles_batch", "rebuild"]

M = TypeVar("M", bound=BaseModel)
EventHandler = Callable[[Any, Any, RecordedEvent[M]], Awaitable[None]]
BatchHandler = Callable[[Any, Any, Sequence[RecordedEvent[M]]], Awaitable[None]]

_MARK = "__tracseq_handles__"

_ADVANCE_IF_CAUGHT_UP = """UPDATE tracseq_es_checkpoints c SET position = $3, updated_at = now()
WHERE c.projection = $1 AND c.position < $2
  AND (SELECT e.position FROM tracseq_es_events e
       WHERE e.position > c.position AND e.position < $2 LIMIT 1) IS NULL
RETURNING c.position"""
_ENSURE_CHECKPOINT = """INSERT INTO tracseq_es_checkpoints (projection) VALUES ($1)
ON CONFLICT (projection) DO NOTHING"""
_LOCK_CHECKPOINT = "SELECT position FROM tracseq_es_checkpoints WHERE projection = $1 FOR UPDATE"
_EVENTS_BETWEEN = """SELECT EXISTS (SELECT 1 FROM tracseq_es_events
    WHERE position > $1 AND position < $2)"""
_MAX_POSITION = "SELECT coalesce(max(position), 0) FROM tracseq_es_events"
_SAVE_CHECKPOINT = """UPDATE tracseq_es_checkpoints SET position = $2, updated_at = now()
WHERE projection = $1"""


def handles(event_type: str, model: type[M]) -> Callable[[EventHandler[M]], EventHandler[M]]:
    """Mark ``async def on_x(self, conn, event: RecordedEvent[Model])`` as the handler
    of ``event_type`` in a :class:`Projection`; its data is decoded as ``model``."""

    def mark(handler: EventHandler[M]) -> EventHandler[M]:
        setattr(handler, _MARK, (event_type, model, False))
        return handler

    return mark


def handles_batch(event_type: str, model: type[M]) -> Callable[[BatchHandler[M]], BatchHandler[M]]:
    """Like :func:`handles`, for ``async def on_x(self, conn, events)``: called once per
    run of consecutive ``event_type`` events, so 10,000 registrations can become one
    ``INSERT ... SELECT FROM unnest(...)`` instead of 10,000 statements."""

    def mark(handler: BatchHandler[M]) -> BatchHandler[M]:
        setattr(handler, _MARK, (event_type, model, True))
        return handler

    return mark


class Projection:
    """A read model kept up to date from the event store, e.g. samples by status.

    Subclass it with a unique ``name`` (its checkpoint's key), the ``tables`` it owns
    (emptied by :meth:`reset` before a rebuild) and handlers marked with
    :func:`handles` / :func:`handles_batch`; events of other types are skipped. The
    handlers get the asyncpg connection of the transaction that also moves the
    checkpoint, so a read model change and its checkpoint commit together: an event is
    applied exactly once, and events seen again (a second runner, a retry after a crash)
    change nothing. Handlers must not commit or open their own connection.

    Run a projection *inline* (``PostgresEventStore(inline=[...])``: updated in every
    appending transaction, never stale) or *catch-up* (:class:`ProjectionRunner`:
    follows the feed, a little behind, off the write path). :func:`rebuild` empties it
    and replays the whole store.
    """

    name: ClassVar[str] = ""
    tables: ClassVar[tuple[str, ...]] = ()
    _handlers: ClassVar[dict[str, tuple[type[BaseModel], bool, Callable[..., Any]]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own: dict[str, tuple[type[BaseModel], bool, Callable[..., Any]]] = {}
        for value in vars(cls).values():
            marked = getattr(value, _MARK, None)
            if marked is None:
                continue
            event_type, model, batch = marked
            if event_type in own:
                raise ConfigurationError(
                    f"{cls.__name__} has two handlers for {event_type!r}; keep one"
                )
            own[event_type] = (model, batch, value)
        cls._handlers = {**cls._handlers, **own}  # a subclass may replace inherited ones

    @classmethod
    def event_types(cls) -> dict[str, type[BaseModel]]:
        """The event types this projection handles and their payload models."""
        return {t: model for t, (model, _, _) in cls._handlers.items()}

    async def reset(self, conn: Any) -> None:
        """Empty the read model before a rebuild: ``TRUNCATE`` of ``tables``.

        Override it for read models that are not whole tables. Raises
        :class:`~tracseq_kit.ConfigurationError` when there is nothing to reset.
        """
        if not self.tables:
            raise ConfigurationError(
                f"projection {self.name!r} declares no tables: set `tables` or override reset()"
            )
        names = ", ".join(_quoted(t) for t in self.tables)
        await conn.execute(f"TRUNCATE {names}")

    async def apply(self, conn: Any, events: Sequence[RecordedEvent[Any]]) -> None:
        """Run the handlers for ``events``, in order (batch handlers once per run of
        consecutive events of their type). Events without a handler are skipped. A
        handler's error propagates: the caller's transaction, checkpoint included, is
        rolled back."""
        i = 0
        while i < len(events):
            found = self._handlers.get(events[i].type)
            if found is None:
                i += 1
                continue
            _, batch, handler = found
            if not batch:
                await handler(self, conn, events[i])
                i += 1
                continue
            j = i + 1
            while j < len(events) and events[j].type == events[i].type:
                j += 1
            await handler(self, conn, events[i:j])
            i = j


def _quoted(table: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in table.split("."))


def register_projections(registry: EventRegistry, projections: Iterable[Projection]) -> None:
    """Register the payload models of ``projections``; check their names are unique."""
    names: set[str] = set()
    for projection in projections:
        if not projection.name:
            raise ConfigurationError(f"{type(projection).__name__} needs a `name`")
        if projection.name in names:
            raise ConfigurationError(f"two projections are named {projection.name!r}")
        names.add(projection.name)
        for event_type, model in projection.event_types().items():
            registry.register(event_type, model)


async def project_inline(
    conn: Any,
    store: PostgresEventStore,
    projection: Projection,
    recorded: Sequence[RecordedEvent[Any]],
) -> None:
    """Apply just-appended ``recorded`` events to ``projection`` in their transaction,
    which holds the append lock exclusively (no other append is in flight).

    Usually the checkpoint is right behind them (one UPDATE moves it). Otherwise — a
    new projection, or one that was rebuilt — the projection first catches up from its
    checkpoint, which covers these events too.
    """
    first, last = recorded[0].position, recorded[-1].position
    moved = await conn.fetchval(_ADVANCE_IF_CAUGHT_UP, projection.name, first, last)
    if moved is None:  # no checkpoint yet, or events before these to apply first
        await conn.execute(_ENSURE_CHECKPOINT, projection.name)
        position = int(await conn.fetchval(_LOCK_CHECKPOINT, projection.name))
        if await conn.fetchval(_EVENTS_BETWEEN, position, first):
            head = int(await conn.fetchval(_MAX_POSITION))  # exclusive: none in flight
            await catch_up(conn, store, projection, batch_size=1000, head=head, to_head=True)
            return
        await conn.execute(_SAVE_CHECKPOINT, projection.name, last)
    handled = projection._handlers
    mine = [r for r in recorded if r.type in handled]
    if mine:
        await projection.apply(conn, mine)


async def catch_up(
    conn: Any,
    store: PostgresEventStore,
    projection: Projection,
    *,
    batch_size: int,
    head: int,
    to_head: bool,
) -> tuple[int, int]:
    """Apply events after the projection's checkpoint up to ``head``, a safe head
    position (:meth:`PostgresEventStore.head_position`), in ``conn``'s transaction.

    The checkpoint row is locked first, so two runners of one projection take turns
    and the second sees the first's checkpoint. One batch, or (``to_head``) batches
    until ``head``. Returns how many events were applied and the new checkpoint.
    """
    await conn.execute(_ENSURE_CHECKPOINT, projection.name)
    position = int(await conn.fetchval(_LOCK_CHECKPOINT, projection.name))
    types = list(projection._handlers)
    applied = 0
    while position < head:
        events = await store.read_all(
            after_position=position, to_position=head, limit=batch_size, types=types, conn=conn
        )
        if events:
            await projection.apply(conn, events)
        applied += len(events)
        position = events[-1].position if len(events) == batch_size else head
        if not to_head:
            break
    await conn.execute(_SAVE_CHECKPOINT, projection.name, position)
    return applied, position


async def rebuild(
    store: PostgresEventStore, projection: Projection, *, batch_size: int = 1000
) -> int:
    """Empty ``projection``'s read model and replay every event into it; returns how
    many events were applied. A handler error rolls everything back (the old read model
    stays) and propagates; :class:`~tracseq_kit.DependencyUnavailableError` if appends
    in flight keep the head from being read (see :meth:`PostgresEventStore.head_position`).

    One transaction: readers see the old read model until the new one commits, and a
    failure leaves the old one in place. The checkpoint stays locked meanwhile, so a
    catch-up runner of the projection waits; for an *inline* projection, appends wait
    too (they bring it up to date in their own transaction). Events appended during the
    rebuild are applied afterwards, by the runner or the next inline append. Exposed on
    the command line as ``python -m tracseq_kit.eventsourcing rebuild``.
    """
    register_projections(store.registry, [projection])
    head = await store.head_position()  # before locking the checkpoint: see catch_up
    async with store.transaction() as conn:
        await conn.execute(_ENSURE_CHECKPOINT, projection.name)
        await conn.fetchval(_LOCK_CHECKPOINT, projection.name)
        await projection.reset(conn)
        await conn.execute(_SAVE_CHECKPOINT, projection.name, 0)
        applied, _ = await catch_up(
            conn, store, projection, batch_size=batch_size, head=head, to_head=True
        )
        return applied
