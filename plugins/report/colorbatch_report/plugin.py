"""Hook implementations of the report plugin (entry point ``report``).

Kept light: everything heavier than the standard library is imported inside
the hooks, so ``colorbatch --help`` stays fast.

How the report gets written during ``colorbatch run``:

1. ``colorbatch_event`` collects the run's events in memory (only for runs whose
   recipe has a ``report`` step), so the step does not depend on files.
2. the ``report`` step thumbnails a sample of items while they stream by and
   writes a provisional report when it closes;
3. ``colorbatch_run_finished`` rewrites it with the final summary (the same one
   the runner writes to ``run.json``), so the page is complete after the run.

``colorbatch report RUN_DIR`` rebuilds the same page from the run folder alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from colorbatch.api import hookimpl


@hookimpl
def colorbatch_register_steps():
    from colorbatch_report.step import STEP

    return [STEP]


@hookimpl
def colorbatch_event(run, name, data):
    if name == "run_started":
        from colorbatch_report.step import LIVE, Live, has_report_step

        if has_report_step(run):
            LIVE[id(run)] = Live()
    from colorbatch_report.step import LIVE

    live = LIVE.get(id(run))
    if live is not None:
        live.add(name, data)


@hookimpl
def colorbatch_run_finished(run, summary):
    from colorbatch_report.step import LIVE, has_report_step

    live = LIVE.pop(id(run), None)
    if not has_report_step(run) or not getattr(run, "is_main", True):
        return
    steps = live.steps if live is not None else []
    for step in steps:
        try:
            path = step.write(summary)
        except Exception as exc:  # noqa: BLE001 - a report never fails a run
            run.warn(f"report: could not write the report: {exc}")
            continue
        if path is not None:
            run.log(f"report: {path}")
    if not steps and getattr(run, "run_dir", None) is not None:
        # the step was never built (the run failed while setting up): report from the folder
        from colorbatch_report.build import build_from_folder

        for cfg in run.plan.steps:
            if cfg.uses == "report":
                o = cfg.options
                try:
                    path = build_from_folder(run.run_dir, Path(o.out), title=o.title,
                                             thumbnail_size=o.thumbnail_size,
                                             thumbnail_format=o.thumbnail_format, max_gallery=o.max_gallery)
                    run.log(f"report: {path}")
                except Exception as exc:  # noqa: BLE001
                    run.warn(f"report: could not write the report: {exc}")


@hookimpl
def colorbatch_register_commands(app):
    import typer

    from colorbatch.api import handle_errors

    @app.command("report")
    @handle_errors
    def report(
        run_dir: Path = typer.Argument(..., help="A run folder (holds run.json, events.jsonl, ...)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Report folder (default: RUN_DIR/report)."),
        title: Optional[str] = typer.Option(None, "--title", help="Page title (default: the recipe's report title)."),
        thumbnail_size: Optional[int] = typer.Option(None, "--thumbnail-size", min=32, max=1024,
                                                     help="Longest side of gallery thumbnails in px (default 192)."),
        thumbnail_format: Optional[str] = typer.Option(None, "--thumbnail-format", help="jpeg (default) or webp."),
        max_gallery: Optional[int] = typer.Option(None, "--max-gallery", min=0, max=5000,
                                                  help="Most images in the gallery; more are sampled evenly (default 240)."),
        json_out: bool = typer.Option(False, "--json", help="Print report.json to stdout."),
    ):
        """Build (or rebuild) the HTML report of a run folder: index.html, report.json, thumbs/."""
        import json
        import time

        from colorbatch.api import ColorbatchError
        from colorbatch_report.build import DEFAULT_MAX_GALLERY, DEFAULT_THUMB, JSON_NAME, build_from_folder

        if not run_dir.is_dir():
            raise ColorbatchError(f"{run_dir}: no such folder; give the run folder of a run (its run_dir)")
        known = ("run.json", "events.jsonl", "recipe.json", "metrics.json", "train_log.jsonl", "metrics.csv")
        if not any((run_dir / n).is_file() for n in known):
            raise ColorbatchError(
                f"{run_dir}: not a run folder (none of {', '.join(known)}); "
                "pass the folder a run wrote (recipe run_dir or --run-dir)"
            )
        # options not given here default to those of the recipe's report step, if any
        step = _recipe_report_options(run_dir)
        title = title if title is not None else step.get("title")
        thumbnail_size = thumbnail_size or step.get("thumbnail_size") or DEFAULT_THUMB
        thumbnail_format = thumbnail_format or step.get("thumbnail_format") or "jpeg"
        max_gallery = max_gallery if max_gallery is not None else step.get("max_gallery", DEFAULT_MAX_GALLERY)
        if out is None:
            # where the step wrote it (and its thumbnails), if that is inside RUN_DIR: a rebuild
            # never writes outside RUN_DIR unless --out says so (a copied run folder, an
            # edited recipe.json)
            recorded = _recorded_out(run_dir, step.get("out"))
            if recorded is not None and (recorded / "thumbs").is_dir():
                out = recorded
        if thumbnail_format not in ("jpeg", "webp"):
            raise ColorbatchError(f"--thumbnail-format {thumbnail_format!r}: use jpeg or webp")
        t0 = time.perf_counter()
        path = build_from_folder(run_dir, out, title=title, thumbnail_size=int(thumbnail_size),
                                 thumbnail_format=thumbnail_format, max_gallery=int(max_gallery))
        if json_out:
            typer.echo((path.parent / JSON_NAME).read_text(encoding="utf-8"))
        else:
            typer.echo(f"report: {path} ({time.perf_counter() - t0:.1f} s)")


def _recorded_out(run_dir: Path, out) -> Optional[Path]:
    """The report step's ``out`` as seen from RUN_DIR, or None when it is not inside it.

    recipe.json records absolute paths; an ``out`` inside the recorded run folder maps
    to the same place inside RUN_DIR (which may be a copy or a moved folder).
    """
    import json
    import os

    if not isinstance(out, str) or not out:
        return None
    try:
        recorded_run = json.loads((run_dir / "recipe.json").read_text(encoding="utf-8")).get("run_dir")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(recorded_run, str) or not recorded_run:
        return None
    rel = os.path.relpath(os.path.normpath(out), os.path.normpath(recorded_run))
    if rel == os.curdir or rel.split(os.sep)[0] == os.pardir or os.path.isabs(rel):
        return None
    candidate = run_dir / rel
    real_run = os.path.realpath(run_dir)
    real = os.path.realpath(candidate)
    if os.path.commonpath([real_run, real]) != real_run:
        return None  # a link inside the run folder that leads out of it
    return candidate


def _recipe_report_options(run_dir: Path) -> dict:
    """The options of the first report step in RUN_DIR/recipe.json ({} if none)."""
    import json

    try:
        recipe = json.loads((run_dir / "recipe.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    for step in (recipe.get("steps") or []) if isinstance(recipe, dict) else []:
        if isinstance(step, dict) and step.get("uses") == "report" and isinstance(step.get("with"), dict):
            return step["with"]
    return {}
