"""What every command needs, core or plugin: error handling with exit codes, the plugin manager, warnings.

A command function wrapped in :func:`handle_errors` turns expected errors into one
line on stderr and the documented exit code, and bugs into exit 3 (``-v`` shows
the traceback). Plugin commands get these through :mod:`colorbatch.api`.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

from colorbatch.display import printable
from colorbatch.errors import ColorbatchError, ExitCode, RecipeError


def stderr_console():
    """A rich console on stderr that never wraps (one error = one line)."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def verbose() -> bool:
    """True when the command line asked for ``-v``/``--verbose`` (read from the running command)."""
    try:
        import click

        ctx = click.get_current_context(silent=True)
    except Exception:  # noqa: BLE001 - not inside a command
        return False
    while ctx is not None:
        if ctx.params.get("verbose"):
            return True
        ctx = ctx.parent
    return False


def current_plugin_manager():
    """The plugin manager of the running command (the process-wide one the CLI built)."""
    from colorbatch import registry

    pm = registry.process_manager()
    if pm is None:
        raise RuntimeError("no plugin manager: run commands through colorbatch.cli (or build one first)")
    return pm


def report_load_errors(pm, console=None) -> None:
    """Print one warning line per plugin that failed to load."""
    console = console or stderr_console()
    for err in pm.load_errors:
        console.print(f"warning: {printable(err.message())}", style="yellow", markup=False, highlight=False)


def handle_errors(fn):
    """Turn expected errors into one line and an exit code; bugs into exit 3."""
    import typer

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except RecipeError as exc:
            console = stderr_console()
            for problem in exc.problems:
                console.print(f"error: {printable(problem)}", style="red", markup=False, highlight=False)
            if len(exc.problems) > 1:
                console.print(f"{len(exc.problems)} problems; nothing was run.", markup=False)
            raise typer.Exit(int(ExitCode.USAGE))
        except ColorbatchError as exc:
            stderr_console().print(f"error: {printable(exc)}", style="red", markup=False, highlight=False)
            if verbose():
                import traceback

                traceback.print_exc()
            raise typer.Exit(int(exc.exit_code))
        except KeyboardInterrupt:
            stderr_console().print("interrupted", style="yellow")
            raise typer.Exit(int(ExitCode.INTERRUPTED))
        except Exception as exc:  # a bug
            console = stderr_console()
            if verbose():
                import traceback

                traceback.print_exc()
            console.print(
                printable(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback; "
                          "please report it)"),
                style="red",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(int(ExitCode.INTERNAL))

    return wrapper


def finish_run(summary: dict, json_mode: bool) -> None:
    """Print a run's summary (one line, or JSON) and exit with its exit code."""
    import json

    import typer

    exc = summary.pop("_exception", None)
    code = summary.get("exit_code", 0)
    # a usage error before any item was handled: its one line says it all (no "0 ok" summary)
    nothing_done = code == int(ExitCode.USAGE) and not (summary.get("ok") or summary.get("failed") or summary.get("skipped"))
    if json_mode:
        typer.echo(json.dumps(summary, indent=2, default=str))
    elif not nothing_done:
        console = stderr_console()
        s = summary
        line = (
            f"{s['recipe']}: {s['ok']} ok, {s['failed']} failed, {s['skipped']} skipped "
            f"in {s['seconds']:.1f} s ({s['rate']:.2f} items/s)"
        )
        style = "green" if code == 0 else "yellow"
        console.print(printable(line), style=style, markup=False, highlight=False)
        if s.get("status") == "interrupted":
            console.print(
                "interrupted: stopped cleanly (finished outputs are kept; the same command goes on "
                "from there)",
                style="yellow",
                markup=False,
                highlight=False,
            )
        if s.get("run_dir") and s.get("status") != "error":
            console.print(printable(f"run folder: {s['run_dir']}"), markup=False, highlight=False)
    if exc is not None:
        if isinstance(exc, ColorbatchError):
            if not json_mode:
                stderr_console().print(f"error: {printable(exc)}", style="red", markup=False, highlight=False)
        else:
            if verbose():
                import traceback

                traceback.print_exception(exc)
            stderr_console().print(
                printable(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)"),
                style="red",
                markup=False,
                highlight=False,
            )
    raise typer.Exit(code)


def print_plan(plan) -> None:
    """Print a plan: its steps and every option (what --dry-run shows)."""
    import json

    from rich.console import Console

    out = Console()
    out.print(f"[bold]{plan.name}[/] ({plan.source}); run folder: {plan.run_dir}")
    for cfg in plan.steps:
        out.print(f"  {cfg.index}. [cyan]{cfg.id}[/] uses {cfg.uses}")
        for key, value in cfg.options.model_dump(mode="json").items():
            out.print(f"       {key} = {json.dumps(value)}", markup=False, highlight=False)


def run_builtin_recipe(
    name: str,
    steps_: list[dict],
    *,
    run_dir: Optional[Path],
    dry_run: bool,
    json_out: bool,
):
    """Build a recipe in code (paths relative to the current folder) and run it: with the summary line,
    ``--json`` output and exit code of ``colorbatch run``; ``dry_run`` lists what would be done."""
    from colorbatch import registry
    from colorbatch.recipe import build_plan

    pm = current_plugin_manager()
    raw = {
        "schema_version": 1,
        "name": name,
        "steps": [
            {"uses": s["uses"], "with": {k: v for k, v in s["with"].items() if v is not None}}
            for s in steps_
        ],
    }
    plan = build_plan(raw, registry.steps(pm), label=f"colorbatch {name}", base_dir=Path.cwd())
    plan.run_dir = run_dir.resolve() if run_dir else None
    report_load_errors(pm)
    if dry_run:
        print_plan(plan)
        _dry_run_inputs(plan, pm)
        return
    from colorbatch.runner import run_plan

    summary = run_plan(plan, pm, json_mode=json_out, verbose=verbose())
    finish_run(summary, json_out)


def _dry_run_inputs(plan, pm) -> None:
    """List what the first step would produce and which items are already done."""
    from rich.console import Console

    from colorbatch.runner import RunContext, build_steps

    ctx = RunContext(plan, pm, show_progress=False, write_run_files=False)
    built = build_steps(ctx)
    ctx.current = plan.steps[0]
    todo = done = 0
    out = Console()
    for item in built[0].run(iter(())):
        if any(s.is_done(item) for s in built[1:]):
            done += 1
            out.print(f"  skip  {printable(item.label)}", markup=False, highlight=False)
        else:
            todo += 1
            out.print(f"  todo  {printable(item.label)}", markup=False, highlight=False)
    for s in built:
        s.close()
    out.print(f"{todo} to process, {done} already done, {len(ctx.failures)} unreadable")
