"""Runs a plan: builds the steps, streams items through them, reports.

The runner knows no step by name. It chains each step's ``run`` generator onto
the previous one, asks output steps which items are already done (resume),
counts ok / failed / skipped, shows progress on stderr and broadcasts the
lifecycle hooks. Only rank 0 of a distributed run writes ``run.json`` and
``events.jsonl`` in the run folder.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from colorbatch import __version__
from colorbatch.display import printable
from colorbatch.errors import ColorbatchError, ExitCode, ItemError, StepError
from colorbatch.item import Item
from colorbatch.recipe import Plan, StepConfig


def _one_line(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    if isinstance(error, ColorbatchError):
        text = str(error)
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split()) or type(error).__name__


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

    ``state`` is a dict steps use to pass results on (``state["checkpoint"]`` is
    the model the last ``train`` step wrote). ``rank``/``world_size`` come from
    torchrun's environment; ``is_main`` is True on rank 0.
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
        self.state: dict[str, Any] = {}
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


def _progress(console):
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


def _counted(items: Iterable[Item], stats: StepStats) -> Iterator[Item]:
    """Count what a step pulls in; time spent upstream is not the step's own."""
    it = iter(items)
    while True:
        t0 = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            stats.seconds -= time.perf_counter() - t0
            return
        stats.seconds -= time.perf_counter() - t0
        if not item.is_marker:
            stats.consumed += 1
        yield item


def _timed(gen: Iterator[Item], stats: StepStats) -> Iterator[Item]:
    while True:
        t0 = time.perf_counter()
        try:
            item = next(gen)
        except StopIteration:
            stats.seconds += time.perf_counter() - t0
            return
        stats.seconds += time.perf_counter() - t0
        if not item.is_marker:
            stats.produced += 1
        yield item


def _skip_done(ctx: RunContext, items: Iterator[Item], later: list, cfg: StepConfig) -> Iterator[Item]:
    for item in items:
        if item.is_marker:
            yield item
            continue
        done_by = next((s for s in later if s.is_done(item)), None)
        if done_by is not None:
            ctx.stats[cfg.id].skipped += 1
            ctx.event("item_skipped", {"item": item.label, "reason": "output exists"})
            continue
        yield item


def versions() -> dict:
    info = {"colorbatch": __version__, "python": platform.python_version()}
    for mod in ("torch", "torchvision"):
        m = sys.modules.get(mod)
        if m is not None:
            info[mod] = getattr(m, "__version__", "?")
    return info


def run_plan(
    plan: Plan,
    pm,
    *,
    console=None,
    show_progress: bool = True,
    json_mode: bool = False,
    verbose: bool = False,
    write_run_files: bool = True,
) -> dict:
    """Run ``plan``; return the summary dict (also written to ``run.json``)."""
    ctx = RunContext(
        plan,
        pm,
        console=console,
        show_progress=show_progress,
        json_mode=json_mode,
        verbose=verbose,
        write_run_files=write_run_files,
    )
    return execute(ctx)


def execute(ctx: RunContext) -> dict:
    from colorbatch.signals import TermAsInterrupt

    with TermAsInterrupt() as term:
        return _execute(ctx, term)


def _execute(ctx: RunContext, term) -> dict:
    plan = ctx.plan
    if ctx.write_run_files:
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        ctx._events = open(ctx.run_dir / "events.jsonl", "a", encoding="utf-8")
        (ctx.run_dir / "recipe.json").write_text(json.dumps(plan.to_dict(), indent=2) + "\n")
    ctx.event("run_started", {"recipe": plan.name, "source": plan.source, "versions": versions()})
    ctx.pm.hook.colorbatch_run_started(run=ctx)

    status = "ok"
    error_message = None
    finished = 0
    steps: list = []
    stream = None
    progress_cm = _progress(ctx.console) if ctx.show_progress and ctx.is_main else nullcontext()
    try:
        with progress_cm as progress:
            ctx._progress = progress
            # build every step first, so setup errors surface before any work
            for cfg in plan.steps:
                ctx.current = cfg
                ctx.stats[cfg.id] = StepStats()
                steps.append(cfg.stepdef.factory(cfg.options, ctx))
            stream = iter(())
            for i, (cfg, step) in enumerate(zip(plan.steps, steps)):
                stats = ctx.stats[cfg.id]
                stream = _timed(_step_stream(ctx, cfg, step, _counted(stream, stats)), stats)
                later = [s for s in steps[i + 1 :] if type(s).is_done is not _base_is_done()]
                if later:
                    stream = _skip_done(ctx, stream, later, cfg)
            overall = ctx.task("items")
            from colorbatch.images import notes_to_show

            for item in stream:
                if item.is_marker:
                    continue
                finished += 1
                overall.advance()
                for note in notes_to_show(item.notes):  # e.g. "animated (3 frames): first frame used"
                    ctx.log(f"note: {item.label}: {note}")
                item.drop_pixels()
            ctx.current = None
    except KeyboardInterrupt:
        term.disarm()
        status = "interrupted"
        ctx.interrupted = True
        error_message = "interrupted"
    except ColorbatchError as exc:
        status = "failed"
        error_message = _one_line(exc)
        if ctx.current is not None:
            error_message = f"{ctx.current.describe()}: {error_message}"
        exc.args = (error_message,)
        ctx._pending_error = exc
    except Exception as exc:
        status = "error"
        error_message = _one_line(exc)
        ctx._pending_error = exc
    finally:
        term.disarm()  # a signal now only counts: the shutdown below must finish
        if stream is not None and hasattr(stream, "close"):
            try:  # ends the steps' generators: decoding workers stop here
                stream.close()
                if status != "ok":
                    # an aborted stream's generator frames sit in reference cycles (exception,
                    # traceback, frame): collect them now, so that workers stop before the summary
                    import gc

                    gc.collect()
            except Exception as exc:  # noqa: BLE001
                ctx.warn(f"stopping the stream failed: {_one_line(exc)}")
        for step in steps:
            try:
                step.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the real error
                ctx.warn(f"closing a step failed: {_one_line(exc)}")

    for cfg in plan.steps:
        st = ctx.stats.get(cfg.id)
        if st is not None:
            ctx.event("step_finished", {"step": cfg.id, "uses": cfg.uses, **st.as_dict()})
            ctx.pm.hook.colorbatch_step_finished(run=ctx, step=cfg, stats=st.as_dict())

    if term.received is not None and status == "ok":
        status, ctx.interrupted, error_message = "interrupted", True, "interrupted"
    elapsed = time.time() - ctx.started
    skipped = sum(s.skipped for s in ctx.stats.values())
    failed = len(ctx.failures)
    summary = {
        "recipe": plan.name,
        "source": plan.source,
        "status": status if status != "ok" or not failed else "items_failed",
        "error": error_message,
        "ok": finished,
        "failed": failed,
        "skipped": skipped,
        "seconds": round(elapsed, 3),
        "rate": round(finished / elapsed, 3) if elapsed > 0 else 0.0,
        "steps": {cid: st.as_dict() for cid, st in ctx.stats.items()},
        "failures": ctx.failures,
        "state": {k: str(v) for k, v in ctx.state.items() if isinstance(v, (str, int, float, Path))},
        "run_dir": str(ctx.run_dir) if ctx.run_dir else None,
        "versions": versions(),
        "device": ctx.state.get("device", "cpu"),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(ctx.started)),
        "world_size": ctx.world_size,
    }
    if status == "ok":
        summary["exit_code"] = int(ExitCode.ITEMS_FAILED if failed else ExitCode.OK)
    elif status == "interrupted":
        summary["exit_code"] = int(ExitCode.INTERRUPTED)
    elif status == "failed":
        summary["exit_code"] = int(getattr(ctx._pending_error, "exit_code", ExitCode.ITEMS_FAILED))
    else:
        summary["exit_code"] = int(ExitCode.INTERNAL)
    ctx.event("run_finished", {k: summary[k] for k in ("status", "ok", "failed", "skipped", "seconds")})
    if ctx.write_run_files:
        (ctx.run_dir / "run.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    ctx.pm.hook.colorbatch_run_finished(run=ctx, summary=summary)
    if ctx._events is not None:
        ctx._events.close()
        ctx._events = None
    pending = getattr(ctx, "_pending_error", None)
    if pending is not None and status == "error":
        summary["_exception"] = pending
    elif pending is not None:
        summary["_exception"] = pending
    return summary


def _base_is_done():
    from colorbatch.steps import Step

    return Step.is_done


def _step_stream(ctx: RunContext, cfg: StepConfig, step, items: Iterator[Item]) -> Iterator[Item]:
    """Run one step's generator, keeping ``ctx.current`` right while it works."""
    gen = step.run(items)
    while True:
        previous = ctx.current
        ctx.current = cfg
        try:
            item = next(gen)
        except StopIteration:
            ctx.current = previous
            return
        except ItemError:
            raise
        ctx.current = previous
        yield item
