"""The ``colorbatch`` command line.

Exit codes: 0 ok; 1 some items or a step failed; 2 usage error or invalid
recipe; 3 internal error (a bug; ``-v`` shows the traceback); 130 interrupted.
"""
from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from colorbatch import __version__
from colorbatch.display import printable
from colorbatch.errors import ColorbatchError, ExitCode, RecipeError

CORE_COMMANDS = {"run", "validate", "steps", "plugins", "colorize", "evaluate", "models", "version"}


class _State:
    verbose: bool = False
    no_plugins: bool = False


state = _State()


def _stderr():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)  # one error = one line, never wrapped


def _pm():
    from colorbatch.plugins import get_plugin_manager, make_plugin_manager, set_plugin_manager

    if state.no_plugins:
        from colorbatch import plugins as _plugins

        if _plugins._PM is None:
            set_plugin_manager(make_plugin_manager(no_plugins=True))
    pm = get_plugin_manager()
    return pm


def _report_load_errors(pm, console=None) -> None:
    console = console or _stderr()
    for err in pm.load_errors:
        console.print(f"warning: {printable(err.message())}", style="yellow", markup=False, highlight=False)


def handle_errors(fn):
    """Turn expected errors into one line and an exit code; bugs into exit 3."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except RecipeError as exc:
            console = _stderr()
            for problem in exc.problems:
                console.print(f"error: {printable(problem)}", style="red", markup=False, highlight=False)
            if len(exc.problems) > 1:
                console.print(f"{len(exc.problems)} problems; nothing was run.", markup=False)
            raise typer.Exit(int(ExitCode.USAGE))
        except ColorbatchError as exc:
            _stderr().print(f"error: {printable(exc)}", style="red", markup=False, highlight=False)
            if state.verbose:
                import traceback

                traceback.print_exc()
            raise typer.Exit(int(exc.exit_code))
        except KeyboardInterrupt:
            _stderr().print("interrupted", style="yellow")
            raise typer.Exit(int(ExitCode.INTERRUPTED))
        except Exception as exc:  # a bug
            console = _stderr()
            if state.verbose:
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


app = typer.Typer(
    name="colorbatch",
    help="Colorize grayscale photographs and video in batches, and train the model that does it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool):
    if value:
        typer.echo(f"colorbatch {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks and more detail."),
    no_plugins: bool = typer.Option(
        False, "--no-plugins", help="Load only the built-in plugin (also COLORBATCH_NO_PLUGINS=1)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version."
    ),
):
    state.verbose = verbose
    state.no_plugins = no_plugins or state.no_plugins


# --------------------------------------------------------------------------- #
# run / validate
# --------------------------------------------------------------------------- #


def _load(recipe: Path, overrides: list[str], run_dir: Optional[Path] = None):
    from colorbatch import registry
    from colorbatch.recipe import load_plan

    pm = _pm()
    return pm, load_plan(recipe, registry.steps(pm), overrides, run_dir=run_dir)


def _print_plan(plan) -> None:
    from rich.console import Console

    out = Console()
    out.print(f"[bold]{plan.name}[/] ({plan.source}); run folder: {plan.run_dir}")
    for cfg in plan.steps:
        out.print(f"  {cfg.index}. [cyan]{cfg.id}[/] uses {cfg.uses}")
        for key, value in cfg.options.model_dump(mode="json").items():
            out.print(f"       {key} = {json.dumps(value)}", markup=False, highlight=False)


def _finish(summary: dict, json_mode: bool) -> None:
    exc = summary.pop("_exception", None)
    code = summary.get("exit_code", 0)
    # a usage error before any item was handled: its one line says it all (no "0 ok" summary)
    nothing_done = code == int(ExitCode.USAGE) and not (summary.get("ok") or summary.get("failed") or summary.get("skipped"))
    if json_mode:
        typer.echo(json.dumps(summary, indent=2, default=str))
    elif not nothing_done:
        console = _stderr()
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
                _stderr().print(f"error: {printable(exc)}", style="red", markup=False, highlight=False)
        else:
            if state.verbose:
                import traceback

                traceback.print_exception(exc)
            _stderr().print(
                printable(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)"),
                style="red",
                markup=False,
                highlight=False,
            )
    raise typer.Exit(code)


@app.command()
@handle_errors
def run(
    recipe: Path = typer.Argument(..., help="The TOML recipe to run."),
    set_: List[str] = typer.Option(
        [], "--set", "-s", help="Override an option: steps.<id>.<option>=VALUE (repeatable)."
    ),
    params: List[str] = typer.Argument(None, help="More overrides as KEY=VALUE.", show_default=False),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder (default: recipe's run_dir)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and print the resolved plan; run nothing."),
    resume: bool = typer.Option(False, "--resume", help="Resume training from the run folder's last checkpoint."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON; no progress bars."),
):
    """Run a recipe."""
    overrides = list(set_) + list(params or [])
    pm, plan = _load(recipe, overrides, run_dir)
    if resume:
        for cfg in plan.steps:
            if "resume" in type(cfg.options).model_fields:
                cfg.options.resume = True
    _report_load_errors(pm)
    if dry_run:
        _print_plan(plan)
        return
    from colorbatch.runner import run_plan

    summary = run_plan(plan, pm, json_mode=json_out, verbose=state.verbose)
    _finish(summary, json_out)


@app.command()
@handle_errors
def validate(
    recipe: Path = typer.Argument(..., help="The TOML recipe to check."),
    set_: List[str] = typer.Option([], "--set", "-s", help="Overrides, as for `run`."),
):
    """Check a recipe completely without running it."""
    _, plan = _load(recipe, list(set_))
    typer.echo(f"{recipe}: ok ({len(plan.steps)} steps: {', '.join(c.id for c in plan.steps)})")


# --------------------------------------------------------------------------- #
# steps / plugins
# --------------------------------------------------------------------------- #


def _describe_options(model) -> list[dict]:
    rows = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        tname = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
        default = None if f.is_required() else f.get_default(call_default_factory=True)
        rows.append(
            {
                "name": name,
                "type": tname,
                "required": f.is_required(),
                "default": default,
                "help": f.description or "",
            }
        )
    return rows


@app.command()
@handle_errors
def steps(json_out: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List every step recipes can use, with its options."""
    from colorbatch import registry

    pm = _pm()
    reg = registry.steps(pm)
    data = [
        {"name": name, "plugin": d.plugin, "help": d.help, "options": _describe_options(d.options())}
        for name, d in sorted(reg.items())
    ]
    if json_out:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    from rich.console import Console

    out = Console()
    for step in data:
        out.print(f"[bold cyan]{step['name']}[/] ({step['plugin']}): {step['help']}")
        for o in step["options"]:
            default = "required" if o["required"] else f"default {json.dumps(o['default'], default=str)}"
            out.print(f"    {o['name']}: {o['type']} ({default})  {o['help']}", markup=False, highlight=False)
    _report_load_errors(pm)


@app.command()
@handle_errors
def plugins(json_out: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List loaded plugins, their versions and hooks, and plugins that failed to load."""
    pm = _pm()
    rows = pm.describe()
    errors = [e.__dict__ for e in pm.load_errors]
    if json_out:
        typer.echo(json.dumps({"plugins": rows, "errors": errors}, indent=2))
        return
    from rich.console import Console

    out = Console()
    for row in rows:
        out.print(f"[bold]{row['name']}[/] ({row['distribution']} {row['version']})")
        out.print(f"    hooks: {', '.join(row['hooks']) or '-'}", markup=False, highlight=False)
    for err in pm.load_errors:
        out.print(f"[red]FAILED[/] {err.name} ({err.distribution} {err.version}): {err.error}")


# --------------------------------------------------------------------------- #
# colorize / evaluate: recipes built from the command line
# --------------------------------------------------------------------------- #


def run_builtin_recipe(
    name: str,
    steps_: list[dict],
    *,
    run_dir: Optional[Path],
    dry_run: bool,
    json_out: bool,
):
    """Build a recipe in code (paths relative to the current folder) and run it."""
    from colorbatch import registry
    from colorbatch.recipe import build_plan

    pm = _pm()
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
    _report_load_errors(pm)
    if dry_run:
        _print_plan(plan)
        _dry_run_inputs(plan, pm)
        return
    from colorbatch.runner import run_plan

    summary = run_plan(plan, pm, json_mode=json_out, verbose=state.verbose)
    _finish(summary, json_out)


def _dry_run_inputs(plan, pm) -> None:
    """List what the first step would produce and which items are already done."""
    from rich.console import Console

    from colorbatch.runner import RunContext

    ctx = RunContext(plan, pm, show_progress=False, write_run_files=False)
    built = [cfg.stepdef.factory(cfg.options, ctx) for cfg in plan.steps]
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


@app.command()
@handle_errors
def colorize(
    input: str = typer.Argument(..., help="An image or video file, a folder (recursive) or a glob."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (or output file for one video)."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="Checkpoint (.safetensors); default: $COLORBATCH_MODEL, then the newest trained model."
    ),
    size: int = typer.Option(256, "--size", help="Network resolution (the long side is fitted, aspect kept)."),
    chroma: str = typer.Option("auto", "--chroma", help="Colour strength: auto (calibrated into the model) or a scale: <1 paler and safer, >1 more vivid."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps (auto: cuda, then mps, then cpu)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Decoding worker processes (default: from the cores)."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="png | jpg | webp | tiff (default: the input's)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs that exist already."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be done; write nothing."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Also write run.json and events.jsonl here."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON; no progress bars."),
):
    """Colorize grayscale images (and, with the video plugin, videos)."""
    run_builtin_recipe(
        "colorize",
        [
            {"uses": "load", "with": {"source": input}},
            {
                "uses": "colorize",
                "with": {"model": model, "size": size, "batch_size": batch_size, "device": device, "workers": workers, "chroma": chroma},
            },
            {"uses": "save", "with": {"out": str(out), "format": fmt, "overwrite": overwrite}},
        ],
        run_dir=run_dir,
        dry_run=dry_run,
        json_out=json_out,
    )


@app.command()
@handle_errors
def evaluate(
    input: str = typer.Argument(..., help="Colour images (file, folder, glob or list file): the ground truth."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="Checkpoint (.safetensors); default: $COLORBATCH_MODEL, then the newest trained model."
    ),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for metrics.json and metrics.csv (default: the run folder)."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run folder for run.json and events.jsonl (default: ./runs/evaluate)."),
    size: int = typer.Option(256, "--size", help="Network resolution (the long side is fitted, aspect kept)."),
    chroma: str = typer.Option("auto", "--chroma", help="Colour strength: auto (calibrated into the model) or a scale: <1 paler and safer, >1 more vivid."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Images per forward pass."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Decoding worker processes (default: from the cores)."),
    save_images: Optional[Path] = typer.Option(None, "--save-images", help="Also save the colorized images in this folder."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON; no progress bars or table."),
):
    """Score a model on colour photos: gray them, colorize, compare with the originals (gray baseline beside each figure)."""
    run_dir = run_dir or out or Path("runs") / "evaluate"
    steps_ = [
        {"uses": "load", "with": {"source": input}},
        {"uses": "colorize", "with": {"model": model, "size": size, "batch_size": batch_size, "device": device, "workers": workers, "chroma": chroma}},
        {"uses": "evaluate", "with": {"out": str((out or run_dir).resolve())}},
    ]
    if save_images is not None:
        steps_.append({"uses": "save", "with": {"out": str(save_images)}})
    run_builtin_recipe("evaluate", steps_, run_dir=run_dir, dry_run=False, json_out=json_out)


@app.command()
@handle_errors
def models(json_out: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List the trained models in the cache and the shipped default; say which one `colorize` uses and why."""
    from colorbatch.models.checkpoint import discover_model_why, models_dir, read_meta, shipped_model

    folder = models_dir()
    try:
        chosen, why = discover_model_why(None)
        chosen = chosen.resolve()
    except ColorbatchError as exc:
        chosen, why = None, str(exc)
    paths = sorted(folder.glob("*.safetensors"), key=lambda q: q.stat().st_mtime, reverse=True) if folder.is_dir() else []
    shipped = shipped_model()
    rows = []
    for p in paths + ([shipped] if shipped else []):
        try:
            meta = read_meta(p)
        except ColorbatchError as exc:
            rows.append({"path": str(p), "error": str(exc)})
            continue
        arch = meta.get("model", {})
        training = meta.get("training") or {}
        cal = meta.get("calibration") or {}
        rows.append(
            {
                "path": str(p),
                "id": meta.get("id"),
                "encoder": arch.get("encoder"),
                "head": arch.get("head", "regress"),
                "created": meta.get("created"),
                "best_val_loss": training.get("best_val_loss"),
                "calibration": {k: cal[k] for k in ("temperature", "chroma") if k in cal} or None,
                "shipped": shipped is not None and p == shipped,
                "default": chosen is not None and p.resolve() == chosen,
            }
        )
    if json_out:
        typer.echo(json.dumps({"cache": str(folder), "selected": str(chosen) if chosen else None, "why": why,
                               "models": rows}, indent=2, default=str))
        return
    from rich.console import Console

    out = Console()
    out.print(f"models in {folder}:", markup=False, highlight=False)
    if not paths:
        out.print("  none yet (train one with `colorbatch run recipes/train_default.toml`)", markup=False)
    for r in rows:
        if r.get("shipped"):
            out.print("shipped with colorbatch:", markup=False, highlight=False)
        if "error" in r:
            out.print(f"  unreadable {r['path']}: {r['error']}", markup=False, highlight=False)
            continue
        mark = "*" if r["default"] else " "
        loss = f", val loss {r['best_val_loss']:.5f}" if isinstance(r["best_val_loss"], (int, float)) else ""
        cal = r["calibration"]
        strength = f", colour strength T {cal.get('temperature', 1):g} x {cal.get('chroma', 1):g}" if cal else ""
        out.print(f"{mark} {r['path']} ({r['encoder']}, {r['head']} head{loss}{strength})", markup=False,
                  highlight=False)
    if chosen is not None:
        out.print(f"colorize uses: {chosen}: {why}", markup=False, highlight=False)
    else:
        out.print(f"colorize has no model: {why}", markup=False, highlight=False)


# --------------------------------------------------------------------------- #
# plugin commands and entry point
# --------------------------------------------------------------------------- #


def _add_plugin_commands() -> None:
    """Let plugins add commands; core names win."""
    if os.environ.get("_COLORBATCH_COMPLETE"):
        return
    try:
        pm = _pm()
    except ColorbatchError as exc:
        _stderr().print(f"error: {exc}", style="red", markup=False, highlight=False)
        raise SystemExit(int(exc.exit_code))
    taken = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    taken |= CORE_COMMANDS
    for impl in reversed(pm.hook.colorbatch_register_commands.get_hookimpls()):
        sub = typer.Typer()
        try:
            impl.function(app=sub)
        except Exception as exc:  # noqa: BLE001
            _stderr().print(
                f"warning: plugin {impl.plugin_name!r} failed to add its commands: {exc}",
                style="yellow",
                markup=False,
            )
            continue
        for cmd in sub.registered_commands:
            name = cmd.name or cmd.callback.__name__.replace("_", "-")
            if name in taken:
                _stderr().print(
                    f"warning: plugin {impl.plugin_name!r} command {name!r} clashes with an existing "
                    "command and was ignored",
                    style="yellow",
                    markup=False,
                )
                continue
            cmd.name = name
            app.registered_commands.append(cmd)
            taken.add(name)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--no-plugins" in argv:
        state.no_plugins = True
    if any(a in ("-v", "--verbose") for a in argv):
        state.verbose = True
    _add_plugin_commands()
    app(args=argv, prog_name="colorbatch")


if __name__ == "__main__":  # pragma: no cover
    main()
