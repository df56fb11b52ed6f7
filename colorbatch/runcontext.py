"""RunContext: what a step sees of its run (state, reporting, progress, events, rank); and per-step stats."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from colorbatch.display import printable
from colorbatch.errors import ColorbatchError, StepError
from colorbatch.errors import one_line as _one_line
from colorbatch.item import Item
from colorbatch.recipe import Plan, StepConfig
from colorbatch.runstate import RunState
from colorbatch.summary import RunSummary


@dataclass
class StepStats:
    consumed: int = 0
    produced: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {
            "in": self.consumed,
            "out": self.produced,
            "ok": self.produced,
            "failed": self.failed,
            "skipped": self.skipped,
            "seconds": round(max(self.seconds, 0.0), 3),
        }


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, **kw) -> None:
        pass

    def close(self) -> None:
        pass


class _Task:
    def __init__(self, progress, task_id):
        self._progress = progress
        self._id = task_id

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._id, n)

    def update(self, **kw) -> None:
        self._progress.update(self._id, **kw)

    def close(self) -> None:
        self._progress.update(self._id, visible=False)


class ItemTotals:
    """How many items each item-counting progress task will see, from what the load
    steps listed: items a load step at position j lists reach a task at step k > j unless
    a step in between consumes the stream (one that produces a checkpoint: train);
    items that failed at a step up to k, or were skipped before k, since the listing
    are taken off."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.counts: dict[int, int | None] = {}  # load step position (0-based) -> items listed (None: unknown)
        self.base: dict[str, tuple[int, int]] | None = None  # (failed, skipped) per step at the first listing
        self.tasks: dict[int, int] = {}  # progress task id -> step position (0-based) it counts at
        self.shown: dict[int, int | None] = {}

    def listed(self, index: int, count: int | None, stats: dict) -> None:
        if self.base is None:
            self.base = {sid: (st.failed, st.skipped) for sid, st in stats.items()}
        prev = self.counts.get(index, 0)
        self.counts[index] = None if count is None or prev is None else prev + int(count)

    def follow(self, task_id: int, index: int) -> None:
        self.tasks[task_id] = index

    def _consumes(self, index: int) -> bool:
        return "checkpoint" in self.plan.steps[index].stepdef.produces

    def total(self, k: int, stats: dict) -> int | None:
        """Items expected at step position ``k`` (0-based; ``len(plan.steps)``: out of the last step)."""
        parts = [(j, n) for j, n in self.counts.items()
                 if j < k and not any(self._consumes(i) for i in range(j + 1, k))]
        if not parts or any(n is None for _, n in parts):
            return None
        first = min(j for j, _ in parts)
        removed = 0
        base = self.base or {}
        for cfg in self.plan.steps[first : k + 1]:
            st = stats.get(cfg.id)
            if st is None:
                continue
            failed0, skipped0 = base.get(cfg.id, (0, 0))
            removed += st.failed - failed0
            if cfg.index - 1 < k:
                removed += st.skipped - skipped0
        return max(0, sum(n for _, n in parts) - removed)

    def apply(self, progress, stats: dict) -> None:
        if not self.tasks:
            return
        done = {t.id: t.completed for t in progress.tasks}
        for task_id, k in self.tasks.items():
            total = self.total(k, stats)
            if total is not None:
                total = max(total, int(done.get(task_id, 0)))
            if self.shown.get(task_id) != total:
                self.shown[task_id] = total
                progress.update(task_id, total=total)


class RunContext:
    """Everything a step may use: options of the run, shared state, reporting.

    ``state`` is the :class:`~colorbatch.runstate.RunState` steps use to pass results
    on by name (``state.checkpoint`` is the model the last ``train`` step wrote;
    plugins keep their own values by type: ``state.put(settings)``,
    ``state.find(VideoSettings)``). ``rank``/``world_size`` come from torchrun's
    environment; ``is_main`` is True on rank 0.
    """

    def __init__(
        self,
        plan: Plan,
        pm,
        *,
        console=None,
        show_progress: bool = True,
        json_mode: bool = False,
        verbose: bool = False,
        write_run_files: bool = True,
    ):
        self.plan = plan
        self.pm = pm
        self.run_dir: Path | None = plan.run_dir
        self.state = RunState()
        self.json_mode = json_mode
        self.verbose = verbose
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.write_run_files = write_run_files and self.is_main and plan.run_dir is not None
        if console is None:
            from rich.console import Console

            console = Console(stderr=True, soft_wrap=True)
        self.console = console
        self.show_progress = show_progress and not json_mode and console.is_terminal
        self.failures: list[dict] = []
        self.stats: dict[str, StepStats] = {}
        self.current: StepConfig | None = None
        self.started = time.time()
        self._progress = None
        self._events = None
        self.interrupted = False
        self.totals = ItemTotals(plan)

    # ---- what the summary shows ---------------------------------------------
    @property
    def device(self) -> str:
        """The device the model ran on (``"cpu"`` until a step says otherwise)."""
        return str(self.state.device or "cpu")

    def state_summary(self) -> dict[str, str]:
        """The plain values of ``state`` (strings, numbers, paths), as strings."""
        return self.state.plain()

    def summary(self, status: str = "running", ok: int | None = None) -> dict:
        """The :class:`~colorbatch.summary.RunSummary` of this run so far, as a dict."""
        return RunSummary.of(self, status=status, ok=ok).to_dict()

    # ---- identity ---------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    # ---- reporting ----------------------------------------------------------
    def log(self, message: str) -> None:
        """A line for the user on stderr (rank 0 only; silent in --json mode)."""
        if self.is_main and not self.json_mode:
            self.console.print(printable(message), markup=False, highlight=False)

    def warn(self, message: str) -> None:
        if self.is_main:
            self.console.print(f"warning: {printable(message)}", style="yellow", markup=False, highlight=False)

    def fail(self, item: Item, error: BaseException | str, step: StepConfig | None = None) -> None:
        """Report that ``item`` failed; the run goes on."""
        step = step or self.current
        message = _one_line(error)
        if isinstance(error, BaseException) and not isinstance(error, ColorbatchError) and self.verbose:
            import traceback

            self.console.print("".join(traceback.format_exception(error)), markup=False)
        sid = step.id if step else "?"
        self.failures.append({"item": item.label, "step": sid, "error": message})
        if step is not None:
            self.stats.setdefault(step.id, StepStats()).failed += 1
            self.refresh_totals()
        if not self.json_mode:
            line = f"failed: {message}" if item.label in message else f"failed: {item.label}: {message}"
            self.console.print(printable(line), style="red", markup=False, highlight=False)
        self.event("item_failed", {"item": item.label, "step": sid, "error": message})
        self.pm.hook.colorbatch_item_failed(run=self, step=step, item=item, error=message)

    def event(self, name: str, data: dict) -> None:
        """Record a named event in events.jsonl and broadcast it to observers."""
        if self._events is not None:
            record = {"t": round(time.time() - self.started, 3), "event": name, **data}
            self._events.write(json.dumps(record, default=str) + "\n")
            self._events.flush()
        if name != "item_failed":
            self.pm.hook.colorbatch_event(run=self, name=name, data=data)

    def task(self, description: str, total: int | None = None, unit: str = "items", *,
             counts_items: bool = False, at: StepConfig | None = None):
        """A progress bar on stderr; a no-op when progress is off.

        ``counts_items=True``: the task advances once per item that gets through the
        step ``at`` (default: the current step); its total then follows what the load
        steps listed (:meth:`listed`), less the items that failed or were skipped on
        the way, so the bar shows a total, a percentage and an ETA whenever the
        count is known (never for an unbounded source such as a watched folder).
        """
        if self._progress is None or not self.is_main:
            return _NullTask()
        task = _Task(self._progress, self._progress.add_task(description, total=total, unit=unit))
        if counts_items and total is None and not self.distributed:
            step = at if at is not None else self.current
            self.totals.follow(task._id, len(self.plan.steps) if step is None else step.index - 1)
            self.refresh_totals()
        return task

    def listed(self, count: int | None) -> None:
        """A load step says how many items it will yield (None: it cannot know, e.g. a
        watched folder); tasks that count items show totals from it."""
        self.totals.listed(self.current.index - 1 if self.current is not None else 0, count, self.stats)
        self.refresh_totals()

    def refresh_totals(self) -> None:
        """Update the totals of item-counting tasks (after a listing, a failure or a skip)."""
        if self._progress is not None:
            self.totals.apply(self._progress, self.stats)

    def path(self, *parts: str) -> Path:
        """A path inside the run folder (created on demand)."""
        if self.run_dir is None:
            raise StepError("this run has no run folder; pass --run-dir")
        p = self.run_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def progress_display(console):
    """A rich progress display (spinner, bar, count, percentage, rate, elapsed time, ETA) on ``console``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            unit = task.fields.get("unit", "items")
            return Text(f"{speed:.2f} {unit}/s" if speed else f"- {unit}/s", style="cyan")

    class PercentColumn(ProgressColumn):
        def render(self, task):  # blank while the total is unknown
            return Text("" if task.total is None else f"{task.percentage:>3.0f}%", style="magenta")

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        PercentColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
