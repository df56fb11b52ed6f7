"""Step base classes and the :class:`StepDef` a plugin registers.

Two kinds of step:

* :class:`ItemStep` handles one item at a time in :meth:`ItemStep.process`; the
  runner catches an :class:`~colorbatch.errors.ItemError` (or any exception) per
  item, reports it and goes on with the next.
* :class:`Step` sees the whole stream in :meth:`Step.run` (an iterator in, an
  iterator out) for batching (colorize), consuming (train) or producing (load).
  Such a step reports a failed item with ``ctx.fail(item, error)`` and does not
  yield it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from colorbatch.errors import StepError

if TYPE_CHECKING:  # pragma: no cover
    from colorbatch.item import Item
    from colorbatch.runner import RunContext


@dataclass
class StepDef:
    """A step that recipes can use.

    name:     the ``uses`` value in a recipe (``"load"``, ``"autocontrast"``).
    options:  a callable returning the pydantic model class of the options
              (called lazily so that importing a plugin stays cheap). The model
              should set ``model_config = ConfigDict(extra="forbid")``.
    factory:  ``factory(options, ctx) -> Step``.
    help:     one line shown by ``colorbatch steps``.
    path_options: names of options holding paths, resolved against the
              recipe's folder when relative.
    produces: what the step leaves for later steps, by name: ``"checkpoint"``
              (a model in ``ctx.state.checkpoint``: a later colorize without a
              model waits for it), ``"metrics"`` (a metrics file).
    writes_outputs: the step writes the run's outputs (save): a step before it
              that keeps arrays only for it may drop them early.
    """

    name: str
    options: Callable[[], type]
    factory: Callable[[Any, "RunContext"], "Step"]
    help: str = ""
    path_options: tuple[str, ...] = ()
    plugin: str = field(default="", compare=False)
    produces: tuple[str, ...] = ()
    writes_outputs: bool = False


class Step:
    """A step that transforms the stream of items."""

    def __init__(self, options: Any, ctx: "RunContext"):
        self.options = options
        self.ctx = ctx

    def run(self, items: Iterable["Item"]) -> Iterator["Item"]:  # pragma: no cover
        raise NotImplementedError

    def is_done(self, item: "Item") -> bool:
        """True when this step's result for ``item`` exists already (resume).

        The runner asks every step before feeding an item in; an item some step
        says is done is counted as skipped. Only output steps answer True.
        """
        return False

    def output_folders(self) -> list:
        """Folders this step writes outputs into. Once every step is built the runner
        puts them in ``ctx.state.exclude_dirs``: no source reads them back as inputs."""
        return []

    def close(self) -> None:
        """Called once after the stream is exhausted (or the run aborted)."""


class ItemStep(Step):
    """A step that processes items one at a time."""

    def process(self, item: "Item") -> "Item | None":  # pragma: no cover
        """Return the item (possibly changed), or None to drop it silently."""
        raise NotImplementedError

    def run(self, items: Iterable["Item"]) -> Iterator["Item"]:
        for item in items:
            if item.is_marker:
                yield item
                continue
            try:
                out = self.process(item)
            except (KeyboardInterrupt, StepError):
                raise  # a whole-step failure ends the run
            except Exception as exc:  # one bad item never stops the batch
                self.ctx.fail(item, exc)
                continue
            if out is not None:
                yield out
