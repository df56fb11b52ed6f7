"""Runs a plan: builds the steps, streams items through them, reports.

The runner knows no step by name. It chains each step's ``run`` generator onto
the previous one, asks output steps which items are already done (resume),
counts ok / failed / skipped, shows progress on stderr and broadcasts the
lifecycle hooks. Only rank 0 of a distributed run writes ``run.json`` and
``events.jsonl`` in the run folder.
"""
from __future__ import annotations

import json
import time
from contextlib import nullcontext
from typing import Iterable, Iterator

from colorbatch.errors import ColorbatchError, ItemError
from colorbatch.errors import one_line as _one_line
from colorbatch.item import Item
from colorbatch.recipe import Plan, StepConfig
from colorbatch.runcontext import RunContext, StepStats, progress_display  # noqa: F401 - RunContext, StepStats: public here too
from colorbatch.summary import RunSummary, versions


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
            ctx.refresh_totals()
            ctx.event("item_skipped", {"item": item.label, "reason": "output exists"})
            continue
        yield item


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
    _start(ctx)
    status, error_message, finished = "ok", None, 0
    steps: list = []
    stream = None
    progress_cm = progress_display(ctx.console) if ctx.show_progress and ctx.is_main else nullcontext()
    try:
        with progress_cm as progress:
            ctx._progress = progress
            build_steps(ctx, steps)  # every step first, so setup errors surface before any work
            ctx.current = None
            stream = stream_items(ctx, steps)
            finished = _drain(ctx, stream)
            ctx.current = None
    except KeyboardInterrupt:
        term.disarm()
        status, error_message = "interrupted", "interrupted"
        ctx.interrupted = True
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
        _stop(ctx, stream, steps, aborted=status != "ok")
    if term.received is not None and status == "ok":
        status, ctx.interrupted, error_message = "interrupted", True, "interrupted"
    return _summarise(ctx, status, error_message, finished)


def _start(ctx: RunContext) -> None:
    """Open the run folder's files and tell observers the run started."""
    plan = ctx.plan
    if ctx.write_run_files:
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        ctx._events = open(ctx.run_dir / "events.jsonl", "a", encoding="utf-8")
        (ctx.run_dir / "recipe.json").write_text(json.dumps(plan.to_dict(), indent=2) + "\n")
    ctx.event("run_started", {"recipe": plan.name, "source": plan.source, "versions": versions()})
    ctx.pm.hook.colorbatch_run_started(run=ctx)


def build_steps(ctx: RunContext, steps: list | None = None) -> list:
    """Build every step of the plan (appended to ``steps`` as they are built, so that a
    failure can close those already built), then record the folders they write
    outputs into in ``ctx.state.exclude_dirs``."""
    steps = [] if steps is None else steps
    for cfg in ctx.plan.steps:
        ctx.current = cfg
        ctx.stats[cfg.id] = StepStats()
        steps.append(cfg.stepdef.factory(cfg.options, ctx))
    for step in steps:
        for folder in step.output_folders():
            if str(folder) not in ctx.state.exclude_dirs:
                ctx.state.exclude_dirs.append(str(folder))
    return steps


def stream_items(ctx: RunContext, steps: list) -> Iterator[Item]:
    """Chain the steps' generators: counted, timed, and skipping items a later step has done."""
    stream: Iterator[Item] = iter(())
    for i, (cfg, step) in enumerate(zip(ctx.plan.steps, steps)):
        stats = ctx.stats[cfg.id]
        stream = _timed(_step_stream(ctx, cfg, step, _counted(stream, stats)), stats)
        later = [s for s in steps[i + 1 :] if type(s).is_done is not _base_is_done()]
        if later:
            stream = _skip_done(ctx, stream, later, cfg)
    return stream


def _drain(ctx: RunContext, stream: Iterator[Item]) -> int:
    """Pull every item through; return how many came out of the last step."""
    from colorbatch.images import notes_to_show

    finished = 0
    overall = ctx.task("items", counts_items=True)  # out of the last step: total and ETA once listed
    for item in stream:
        if item.is_marker:
            continue
        finished += 1
        overall.advance()
        for note in notes_to_show(item.notes):  # e.g. "animated (3 frames): first frame used"
            ctx.log(f"note: {item.label}: {note}")
        item.drop_pixels()
    return finished


def _stop(ctx: RunContext, stream, steps: list, *, aborted: bool) -> None:
    """End the steps' generators (decoding workers stop here) and close every step."""
    if stream is not None and hasattr(stream, "close"):
        try:
            stream.close()
            if aborted:
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


def _summarise(ctx: RunContext, status: str, error_message: str | None, finished: int) -> dict:
    """Report each step's stats, build the RunSummary, write run.json, tell observers."""
    for cfg in ctx.plan.steps:
        st = ctx.stats.get(cfg.id)
        if st is not None:
            ctx.event("step_finished", {"step": cfg.id, "uses": cfg.uses, **st.as_dict()})
            ctx.pm.hook.colorbatch_step_finished(run=ctx, step=cfg, stats=st.as_dict())
    pending = getattr(ctx, "_pending_error", None)
    summary = RunSummary.of(ctx, status=status, ok=finished, error=error_message, exception=pending).to_dict()
    ctx.event("run_finished", {k: summary[k] for k in ("status", "ok", "failed", "skipped", "seconds")})
    if ctx.write_run_files:
        (ctx.run_dir / "run.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    ctx.pm.hook.colorbatch_run_finished(run=ctx, summary=summary)
    if ctx._events is not None:
        ctx._events.close()
        ctx._events = None
    if pending is not None:
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
