"""RunState: the typed state one run's steps share (model, checkpoint, output folders), plus plugins' typed values."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Optional, Type, TypeVar

T = TypeVar("T")


@dataclass(eq=False, repr=False)
class RunState(dict):
    """What steps of one run tell each other, by name.

    checkpoint:   the model a step that produces one (``train``) wrote; a later
                  ``colorize`` without ``model`` uses it.
    model:        the model colorize uses (a path, or an id for an in-memory model).
    model_id:     its id as outputs and manifests record it (chroma suffix included).
    device:       where the model runs.
    exclude_dirs: output folders of this run (from the steps' ``output_folders()``);
                  sources never read them back as inputs.
    output_overlaps_inputs: output folder -> True when inputs live inside it.
    hints:        the colorize step's :class:`colorbatch.hints.HintPlan` (where each
                  item's colour hints come from; save's resume check uses its digests).
    metrics, published, load_count, train_skipped_gray, train_skipped_unreadable:
                  what evaluate, train and load report (shown in the run summary).
    facts:        figures a plugin's step or source reports for the run summary
                  (``run.json``'s ``state``), by the name shown there.

    Plugins keep their own values by type, not by a string key: ``state.put(value)``
    keeps one value of each class, ``state.find(cls)`` gives it back (or None).

    For older plugins a RunState is also a dict: its mapping methods reach the named
    fields by name (``ctx.state["checkpoint"]``) and keep other string keys as they
    are. Our own steps and plugins use the fields and ``put``/``find`` only.
    """

    checkpoint: Any = None
    model: str | None = None
    model_id: str | None = None
    device: str | None = None
    exclude_dirs: list[str] = field(default_factory=list)
    output_overlaps_inputs: dict[str, bool] = field(default_factory=dict)
    hints: Any = None
    metrics: Any = None
    published: Any = None
    load_count: int | None = None
    train_skipped_gray: int | None = None
    train_skipped_unreadable: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    _typed: dict[type, Any] = field(default_factory=dict)

    # ---- plugins' values, by type -------------------------------------------------
    def put(self, value: T) -> T:
        """Keep ``value`` for the other steps of this run (one per class; a later one replaces it)."""
        self._typed[type(value)] = value
        return value

    def find(self, kind: Type[T]) -> Optional[T]:
        """The value of class ``kind`` (or a subclass) that a step kept with :meth:`put`, else None."""
        value = self._typed.get(kind)
        if value is None:
            value = next((v for t, v in self._typed.items() if issubclass(t, kind)), None)
        return value

    # ---- the mapping view (plugins' own keys; older code) -------------------------
    _LEGACY = {"save_overlaps_inputs": "output_overlaps_inputs"}

    @classmethod
    def _field(cls, key: str) -> str | None:
        key = cls._LEGACY.get(key, key)
        return key if key in _NAMES else None

    def __getitem__(self, key: str) -> Any:
        name = self._field(key)
        if name is not None:
            value = getattr(self, name)
            if value is None:
                raise KeyError(key)
            return value
        return dict.__getitem__(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        name = self._field(key)
        if name is not None:
            setattr(self, name, value)
        else:
            dict.__setitem__(self, key, value)

    def __contains__(self, key: str) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def pop(self, key: str, *default: Any) -> Any:
        name = self._field(key)
        if name is not None:
            value = getattr(self, name)
            setattr(self, name, None)
            return value
        return dict.pop(self, key, *default)

    def items(self) -> Iterator[tuple[str, Any]]:
        for name in _NAMES:
            value = getattr(self, name)
            if value is not None and value != [] and value != {}:
                yield name, value
        yield from self.facts.items()
        yield from dict.items(self)

    def keys(self):
        return [k for k, _ in self.items()]

    def __iter__(self):
        return iter(self.keys())

    def plain(self) -> dict[str, str]:
        """The plain values (strings, numbers, paths) as strings: the ``state`` of a run summary."""
        return {k: str(v) for k, v in self.items() if isinstance(v, (str, int, float, Path))}


    def __bool__(self) -> bool:
        return True  # a run's state always exists, even before anything is in it

    def __repr__(self) -> str:
        return f"RunState({dict(self.items())!r})"


_NAMES = tuple(f.name for f in fields(RunState) if f.name not in ("facts", "_typed"))
