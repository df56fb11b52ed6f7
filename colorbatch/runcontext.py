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

    def task(self, description: str, total: int | None = None, unit: str = "items"):
        """A progress bar on stderr; a no-op when progress is off."""
        if self._progress is None or not self.is_main:
            return _NullTask()
        return _Task(self._progress, self._progress.add_task(description, total=total, unit=unit))

    def path(self, *parts: str) -> Path:
        """A path inside the run folder (created on demand)."""
        if self.run_dir is None:
            raise StepError("this run has no run folder; pass --run-dir")
        p = self.run_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


def progress_display(console):
    """A rich progress display (spinner, bar, count, rate, times) on ``console``."""
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

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
