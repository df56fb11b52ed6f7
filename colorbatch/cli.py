"""The ``colorbatch`` command line: its own generic commands (run, validate, steps, plugins) and every plugin's, through the command hook.

Exit codes: 0 ok; 1 some items or a step failed; 2 usage error or invalid
recipe; 3 internal error (a bug; ``-v`` shows the traceback); 130 interrupted.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from colorbatch import __version__
from colorbatch.commands import finish_run, handle_errors, print_plan, report_load_errors, stderr_console, verbose
from colorbatch.errors import ColorbatchError

def _stderr():
    return stderr_console()


def plugin_manager(no_plugins: bool = False):
    """The process-wide plugin manager; ``no_plugins`` builds a core-only one if none exists yet."""
    from colorbatch.plugins import get_plugin_manager, use_core_only

    if no_plugins:
        use_core_only()
    return get_plugin_manager()


def _pm():
    return plugin_manager()


_APP_SETTINGS = dict(
    name="colorbatch",
    help="Colorize grayscale photographs and video in batches, and train the model that does it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: The CLI's own commands (they name no step); :func:`build_app` adds the plugins' commands.
app = typer.Typer(**_APP_SETTINGS)


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
    plugin_manager(no_plugins=no_plugins)  # the one the commands use (plugin commands too)


# --------------------------------------------------------------------------- #
# run / validate
# --------------------------------------------------------------------------- #


def _load(recipe: Path, overrides: list[str], run_dir: Optional[Path] = None):
    from colorbatch import registry
    from colorbatch.recipe import load_plan

    pm = _pm()
    return pm, load_plan(recipe, registry.steps(pm), overrides, run_dir=run_dir)


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
    report_load_errors(pm)
    if dry_run:
        print_plan(plan)
        return
    from colorbatch.runner import run_plan

    summary = run_plan(plan, pm, json_mode=json_out, verbose=verbose())
    finish_run(summary, json_out)


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
    report_load_errors(pm)


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
# plugin commands and entry point
# --------------------------------------------------------------------------- #


def _name(cmd) -> str:
    return cmd.name or cmd.callback.__name__.replace("_", "-")


def _add_commands(app, impl, taken: set, *, plugin_name: str) -> None:
    """Call one ``colorbatch_register_commands`` implementation; add its commands unless the name is taken."""
    sub = typer.Typer()
    try:
        impl(app=sub)
    except Exception as exc:  # noqa: BLE001
        _stderr().print(f"warning: plugin {plugin_name!r} failed to add its commands: {exc}",
                        style="yellow", markup=False)
        return
    for cmd in sub.registered_commands:
        name = _name(cmd)
        if name in taken:
            _stderr().print(
                f"warning: plugin {plugin_name!r} command {name!r} clashes with an existing "
                "command and was ignored",
                style="yellow",
                markup=False,
            )
            continue
        cmd.name = name
        app.registered_commands.append(cmd)
        taken.add(name)


def build_app(pm) -> typer.Typer:
    """The whole command line for ``pm``: the CLI's own commands (run, validate, steps, plugins), then
    every plugin's, the core plugin's included, through ``colorbatch_register_commands``.

    The core plugin is asked first, so its names win over third parties'; the CLI's own win over all.
    """
    from colorbatch.plugins import CORE_PLUGIN_NAME

    whole = typer.Typer(**_APP_SETTINGS)
    whole.registered_callback = app.registered_callback
    whole.registered_commands = list(app.registered_commands)
    taken = {_name(c) for c in whole.registered_commands}
    impls = list(reversed(pm.hook.colorbatch_register_commands.get_hookimpls()))
    impls.sort(key=lambda impl: impl.plugin_name != CORE_PLUGIN_NAME)  # stable: the core first
    for impl in impls:
        _add_commands(whole, impl.function, taken, plugin_name=impl.plugin_name)
    return whole


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    # shell completion lists the built-in commands only (no third-party plugin is loaded for it)
    no_plugins = "--no-plugins" in argv or bool(os.environ.get("_COLORBATCH_COMPLETE"))
    try:
        pm = plugin_manager(no_plugins=no_plugins)
    except ColorbatchError as exc:
        _stderr().print(f"error: {exc}", style="red", markup=False, highlight=False)
        raise SystemExit(int(exc.exit_code))
    build_app(pm)(args=argv, prog_name="colorbatch")


# modules whose teardown at interpreter exit is slow (torch alone: ~0.8 s on 2 cores, with
# numba ~1.1 s, after the last output is written); a process that loaded one ends with os._exit
_SLOW_TEARDOWN = ("torch", "numba")


def entry() -> None:
    """The ``colorbatch`` command (console script and ``python -m colorbatch``): :func:`main`,
    then :func:`fast_exit` with its exit code. In-process callers use :func:`main`."""
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    fast_exit(code)


def fast_exit(code=0) -> None:
    """End the process with ``code`` (as ``sys.exit`` reads it) once the work is done.

    Where torch or numba was loaded, the interpreter's module teardown costs about a second
    and does nothing a command needs. This does what a normal exit does that matters:
    it waits for non-daemon threads, runs the ``atexit`` handlers (multiprocessing's ends
    worker processes; logging's flushes), flushes stdout and stderr, and then calls ``os._exit``.
    Without those modules it raises SystemExit as usual.
    """
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    if not any(m in sys.modules for m in _SLOW_TEARDOWN):
        raise SystemExit(code)
    import atexit
    import threading

    for t in threading.enumerate():
        if t is not threading.current_thread() and not t.daemon:
            t.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more to say
            pass
    os._exit(code & 0xFF)


if __name__ == "__main__":  # pragma: no cover
    entry()
