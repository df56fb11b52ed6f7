"""``colorbatch watch IN --out OUT``: a drop folder that colorizes what is put in it.

The command builds the recipe ``load(layout="watch") -> colorize -> save`` and
runs it with the core runner, so the colorizing and the output manifest are the
core's; the watch source adds completeness checks, exactly-once bookkeeping,
retries and the live status.

Exit codes: 0 after a clean stop (SIGTERM, or --once with every file done);
1 when --once saw files fail; 2 bad usage; 130 after Ctrl-C (SIGINT), or when a
second signal abandoned the current batch.
"""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Optional

import typer

HELP = """Colorize every image that appears in a folder, exactly once.

Images already in IN without an output are done first, then each new or replaced one, mirroring IN's tree under OUT. A file is taken when its size and mtime have been stable for --settle seconds, or when it is moved into place; .part/.tmp/.crdownload/~ files and hidden files are ignored. Progress is kept in OUT (.colorbatch-manifest.jsonl, and the event log .colorbatch-watch.jsonl), so a restart goes on where it stopped; a corrupt file is reported once and not retried until it is replaced (or --retry-failed).

Stop with Ctrl-C or SIGTERM: the current batch is finished (a second signal abandons it; outputs are written atomically, so none is partial). Exit code 0 after SIGTERM, 130 after Ctrl-C; with --once, 0 or 1 (some files failed).
"""


def register(app) -> None:
    from colorbatch.api import handle_errors

    @app.command(name="watch", help=HELP)
    @handle_errors
    def watch(
        input: Path = typer.Argument(..., help="The folder to watch (recursive)."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder (may not be IN; may lie inside it)."),
        model: Optional[str] = typer.Option(
            None, "--model", "-m", help="Checkpoint (.safetensors); default: $COLORBATCH_MODEL, then the newest trained model."
        ),
        once: bool = typer.Option(False, "--once", help="Process what is there now, then exit (for cron and CI)."),
        poll: bool = typer.Option(False, "--poll", help="Poll instead of file events (network shares, some containers)."),
        settle: float = typer.Option(2.0, "--settle", help="Seconds a file's size and mtime must be stable before it is taken."),
        rescan: float = typer.Option(30.0, "--rescan", help="Seconds between full rescans (a safety net for missed events)."),
        batch_size: int = typer.Option(8, "--batch-size", "-b", help="Images per forward pass."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps."),
        size: int = typer.Option(256, "--size", help="Network resolution (the long side is fitted, aspect kept)."),
        workers: int = typer.Option(0, "--workers", "-j", help="Decoding worker processes per batch (0: decode in the main process)."),
        fmt: Optional[str] = typer.Option(None, "--format", "-f", help="png | jpg | webp | tiff (default: the input's)."),
        retry_failed: bool = typer.Option(False, "--retry-failed", help="Try again files that failed in earlier sessions."),
        run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Also write run.json and events.jsonl here."),
        json_out: bool = typer.Option(False, "--json", help="Print the session summary as JSON on stdout; no live status."),
    ):
        run_watch(
            input, out, model=model, once=once, poll=poll, settle=settle, rescan=rescan,
            batch_size=batch_size, device=device, size=size, fmt=fmt, retry_failed=retry_failed, workers=workers,
            run_dir=run_dir, json_out=json_out,
        )


def _step_options(stepdef, wanted: dict) -> dict:
    """Keep the options the installed step has (and drop unset ones)."""
    fields = getattr(stepdef.options(), "model_fields", {})
    return {k: v for k, v in wanted.items() if v is not None and k in fields}


def build_watch_plan(pm, input: Path, out: Path, *, model, batch_size, device, size, fmt, workers=0):
    from colorbatch.api import ColorbatchError, build_plan, steps_of

    steps = steps_of(pm)
    for name in ("load", "colorize", "save"):
        if name not in steps:
            raise ColorbatchError(f"step {name!r} is not available; reinstall colorbatch")
    wanted = {
        "load": {"source": str(input), "layout": "watch"},
        # chunk = batch size: a stop request waits for one batch at most
        "colorize": {"model": model, "size": size, "batch_size": batch_size, "device": device,
                     "workers": workers, "chunk": batch_size},
        "save": {"out": str(out), "format": fmt},
    }
    raw = {
        "schema_version": 1,
        "name": "watch",
        "steps": [{"uses": n, "with": _step_options(steps[n], w)} for n, w in wanted.items()],
    }
    return build_plan(raw, steps, label="colorbatch watch", base_dir=Path.cwd())


def _wait_for_output(session, out: Path, console) -> bool:
    """Wait (with backoff) until ``out`` can be written; False if asked to stop."""
    from colorbatch_watch.session import BACKOFF_MAX, output_writable

    delay = 1.0
    while not output_writable(out):
        if session.stop_requested:
            return False
        console.print(f"warning: output folder {out} is not writable; retrying in {delay:.0f} s",
                      style="yellow", markup=False, highlight=False)
        session.record("output_blocked", out=str(out), retry_in=delay)
        end = time.monotonic() + delay
        while time.monotonic() < end and not session.stop_requested:
            time.sleep(0.1)
        delay = min(BACKOFF_MAX, delay * 2)
    return True


class _PlainStatus:
    """A status line for logs (stderr not a terminal): printed when it changes, at most every few seconds."""

    def __init__(self, console, every: float = 5.0):
        self.console = console
        self.every = every
        self.last_text = ""
        self.last_time = 0.0

    def __call__(self, session) -> None:
        text = session.status_line()
        now = time.monotonic()
        if text != self.last_text and now - self.last_time >= self.every:
            self.console.print(text, markup=False, highlight=False)
            self.last_text, self.last_time = text, now


def run_watch(
    input: Path, out: Path, *, model=None, once=False, poll=False, settle=2.0, rescan=30.0,
    batch_size=8, device="auto", size=256, fmt=None, retry_failed=False, run_dir=None, json_out=False, workers=0,
):
    from contextlib import nullcontext

    from rich.console import Console

    from colorbatch.api import (ColorbatchError, ExitCode, RunContext, execute, plugin_manager,
                                report_load_errors, verbose)

    from colorbatch_watch.session import WatchSession
    from colorbatch_watch.source import WatchConfig

    if settle < 0 or rescan <= 0:
        raise ColorbatchError("--settle must be >= 0 and --rescan > 0 (seconds)")
    input = input.expanduser()
    if not input.is_dir():
        raise ColorbatchError(f"{input}: not a folder; `colorbatch watch` needs the folder to watch")
    input = input.resolve()
    out = out.expanduser().resolve()
    if out == input:
        raise ColorbatchError(f"{out}: --out cannot be the watched folder; pick another (a subfolder is fine)")

    console = Console(stderr=True)
    pm = plugin_manager()
    plan = build_watch_plan(pm, input, out, model=model, batch_size=batch_size, device=device, size=size, fmt=fmt,
                            workers=workers)
    plan.run_dir = run_dir.resolve() if run_dir else None
    report_load_errors(pm, console)

    session = WatchSession(input, out, retry_failed=retry_failed)
    session.install_signal_handlers()
    try:
        if not _wait_for_output(session, out, console):
            session.close()
            raise typer.Exit(_exit_code(session, None, once))
        live = None
        if console.is_terminal and not json_out:
            from rich.live import Live
            from rich.text import Text

            class _Line:
                def __rich__(self):
                    return Text(session.status_line(), style="cyan")

            live = Live(_Line(), console=console, refresh_per_second=2, transient=True)
            status = None
        else:
            status = None if json_out else _PlainStatus(console)
        config = WatchConfig(settle=settle, poll=poll, rescan=rescan, once=once, retry_failed=retry_failed,
                             status=status)
        ctx = RunContext(plan, pm, console=console, show_progress=False, json_mode=json_out,
                         verbose=verbose(), write_run_files=plan.run_dir is not None)
        ctx.state.put(config)
        ctx.state.put(session)
        if not json_out:
            mode = "once" if once else ("polling" if poll else "file events")
            console.print(f"watching {input} -> {out} ({mode}, settle {settle:g} s); Ctrl-C to stop",
                          markup=False, highlight=False)
        with (live if live is not None else nullcontext()):
            summary = execute(ctx)
    finally:
        if session.watcher is not None:
            session.watcher.shutdown()
        session.restore_signal_handlers()
        session.close()

    exc = summary.pop("_exception", None)
    stats = session.stats()
    if json_out:
        typer.echo(json.dumps({**stats, "status": summary.get("status"), "error": summary.get("error")},
                              indent=2, default=str))
    elif session.watching:
        console.print(
            f"watch: {stats['done']} done, {stats['skipped']} already done, {stats['failed']} failed "
            f"in {stats['seconds']:.1f} s; log: {out / '.colorbatch-watch.jsonl'}",
            style="green" if not stats["failed"] else "yellow", markup=False, highlight=False,
        )
    if exc is not None:
        if isinstance(exc, ColorbatchError):
            console.print(f"error: {exc}", style="red", markup=False, highlight=False)
            raise typer.Exit(int(getattr(exc, "exit_code", ExitCode.USAGE)))
        if verbose():
            import traceback

            traceback.print_exception(exc)
        console.print(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)",
                      style="red", markup=False, highlight=False)
        raise typer.Exit(int(ExitCode.INTERNAL))
    raise typer.Exit(_exit_code(session, summary, once))


def _exit_code(session, summary, once: bool) -> int:
    from colorbatch.api import ExitCode

    if summary is not None and summary.get("status") == "interrupted":
        return int(ExitCode.INTERRUPTED)
    if session.stop_signal == signal.SIGINT:
        return int(ExitCode.INTERRUPTED)
    if session.stop_signal in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        return int(ExitCode.OK)
    if once and session.counts["failed"]:
        return int(ExitCode.ITEMS_FAILED)
    return int(ExitCode.OK)
