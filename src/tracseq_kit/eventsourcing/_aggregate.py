"""Aggregate: state rebuilt from typed events, commands that guard and record them."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any, ClassVar, Generic, TypeVar, cast, get_args, get_origin

from pydantic import BaseModel, ValidationError

from tracseq_kit._exceptions import CommandRejectedError, ConfigurationError

__all__ = ["Aggregate", "applies"]

StateT = TypeVar("StateT", bound=BaseModel)
M = TypeVar("M", bound=BaseModel)
Applier = Callable[[Any, M], None]

_MARK = "__tracseq_applies__"


def applies(event_type: str, model: type[M]) -> Callable[[Applier[M]], Applier[M]]:
    """Mark ``def _received(self, data: SampleReceived) -> None`` as the method that
    applies ``event_type`` events (payload ``model``) to an :class:`Aggregate`'s state.

    Appliers only change state: they run when a command records an event and again,
    for every stored event, each time the aggregate is loaded; they must not check
    rules (the command did) nor fail.
    """

    def mark(applier: Applier[M]) -> Applier[M]:
        setattr(applier, _MARK, (event_type, model))
        return applier

    return mark


class Aggregate(Generic[StateT]):
    """An event-sourced aggregate: a pydantic ``state`` rebuilt by applying its events.

    Subclass it as ``class Sample(Aggregate[SampleState])`` with a stable
    ``stream_type`` (``"sample"``; stored with every event) and one :func:`applies`
    method per event type. Commands are methods that check rules with
    :meth:`require` / :meth:`require_status` and then :meth:`record` events; creation
    is a classmethod that makes ``cls(id)`` and records the first event. The state
    model's fields need defaults (or override :meth:`initial_state`). Do not override
    ``__init__``: the repository builds aggregates with ``cls(id)``.

    ``version`` counts the events applied, recorded ones included; ``pending`` holds
    the payloads recorded since the last save, which :class:`Repository` appends with
    the version the aggregate was loaded at as the expected version.
    ``snapshot_version``: bump it when the state model changes incompatibly, so older
    snapshots are ignored.
    """

    stream_type: ClassVar[str] = ""
    snapshot_version: ClassVar[int] = 1
    state_model: ClassVar[type[BaseModel] | None] = None
    _appliers: ClassVar[dict[str, Callable[[Any, Any], None]]] = {}
    _models: ClassVar[dict[str, type[BaseModel]]] = {}
    _types: ClassVar[dict[type[BaseModel], str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, Aggregate):
                args = get_args(base)
                if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
                    cls.state_model = args[0]
        appliers = dict(cls._appliers)
        models = dict(cls._models)
        own: set[str] = set()
        for value in vars(cls).values():
            marked = getattr(value, _MARK, None)
            if marked is None:
                continue
            event_type, model = marked
            if event_type in own:
                raise ConfigurationError(
                    f"{cls.__name__} has two appliers for {event_type!r}; keep one"
                )
            own.add(event_type)
            appliers[event_type] = value
            models[event_type] = model
        types: dict[type[BaseModel], str] = {}
        for event_type, model in models.items():
            if model in types:
                raise ConfigurationError(
                    f"{cls.__name__}: {model.__name__} is the payload of both "
                    f"{types[model]!r} and {event_type!r}; give each event type its own model"
                )
            types[model] = event_type
        cls._appliers, cls._models, cls._types = appliers, models, types

    def __init__(self, id: str) -> None:
        if not id:
            raise ConfigurationError(f"a {type(self).__name__} needs a non-empty id")
        self.id = id
        self.version = 0
        self.state: StateT = self.initial_state()
        self._pending: list[tuple[str, BaseModel]] = []

    @classmethod
    def initial_state(cls) -> StateT:
        """The state before any event: ``state_model()`` (all fields at their defaults)."""
        model = cls.state_model
        if model is None:
            raise ConfigurationError(
                f"{cls.__name__} does not name its state model: "
                f"class {cls.__name__}(Aggregate[MyState])"
            )
        try:
            return cast(StateT, model())
        except ValidationError as exc:
            raise ConfigurationError(
                f"{model.__name__} has fields without defaults: give them defaults or "
                f"override {cls.__name__}.initial_state()"
            ) from exc

    @classmethod
    def event_types(cls) -> dict[str, type[BaseModel]]:
        """The event types this aggregate records and their payload models."""
        return dict(cls._models)

    @property
    def pending(self) -> tuple[BaseModel, ...]:
        """Payloads recorded since the aggregate was loaded or last saved, in order."""
        return tuple(data for _, data in self._pending)

    @property
    def saved_version(self) -> int:
        """The version when it was loaded or last saved (what a save expects)."""
        return self.version - len(self._pending)

    def record(self, data: BaseModel) -> None:
        """Apply the event whose payload is ``data`` and keep it for the next save.

        Raises :class:`~tracseq_kit.ConfigurationError` if no :func:`applies` method
        takes ``type(data)``.
        """
        event_type = self._types.get(type(data))
        if event_type is None:
            raise ConfigurationError(
                f"{type(self).__name__} has no applier for {type(data).__name__}: "
                "mark a method with @applies(event_type, model)"
            )
        self._appliers[event_type](self, data)
        self.version += 1
        self._pending.append((event_type, data))

    def _replay(self, event_type: str, data: Any) -> None:
        """Apply a stored event (the repository does this on load).

        Raises :class:`~tracseq_kit.ConfigurationError` for a type without an applier.
        """
        applier = self._appliers.get(event_type)
        if applier is None:
            raise ConfigurationError(
                f"{type(self).__name__} {self.id!r} has a stored {event_type!r} event "
                "but no applier for it"
            )
        applier(self, data)
        self.version += 1

    def _mark_saved(self) -> None:
        """Forget the pending events (they were appended)."""
        self._pending.clear()

    @property
    def status(self) -> str | None:
        """The state's ``status`` as text, if the state has one."""
        value = getattr(self.state, "status", None)
        if value is None:
            return None
        return str(value.value) if isinstance(value, Enum) else str(value)

    def require(self, condition: bool, command: str, reason: str) -> None:
        """Refuse ``command`` with ``reason`` unless ``condition`` holds.

        Raises :class:`~tracseq_kit.CommandRejectedError` (services answer 409) naming
        the command, the aggregate and its current status.
        """
        if not condition:
            raise CommandRejectedError(
                stream_type=self._kind(),
                aggregate_id=self.id,
                command=command,
                state=self.status,
                reason=reason,
            )

    def require_status(self, command: str, *allowed: str) -> None:
        """Refuse ``command`` unless the state's ``status`` is one of ``allowed``.

        Raises :class:`~tracseq_kit.CommandRejectedError` whose message names the
        current status and the allowed ones, e.g. ``cannot pass_qc sample 'S-1': it
        is qc_failed (allowed from: received)``; :class:`~tracseq_kit.ConfigurationError`
        if the state has no ``status``.
        """
        if not hasattr(self.state, "status"):
            raise ConfigurationError(
                f"{type(self.state).__name__} has no `status` field; use require()"
            )
        status = self.status
        if status not in allowed:
            raise CommandRejectedError(
                stream_type=self._kind(),
                aggregate_id=self.id,
                command=command,
                state=status,
                reason=f"it is {status} (allowed from: {', '.join(allowed)})",
                allowed=tuple(allowed),
            )

    def _kind(self) -> str:
        return self.stream_type or type(self).__name__.lower()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, version={self.version})"
