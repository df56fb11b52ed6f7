"""The core plugin's commands: ``colorize``, ``evaluate`` and ``models`` (registered through ``colorbatch_register_commands``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from colorbatch.commands import handle_errors, run_builtin_recipe
from colorbatch.errors import ColorbatchError


def register(app) -> None:
    """Add the core commands to ``app``, as any plugin adds its own."""

    @app.command()
    @handle_errors
    def colorize(
        input: str = typer.Argument(..., help="An image or video file, a folder (recursive) or a glob."),
        out: Path = typer.Option(..., "--out", "-o", help="Output folder (or output file for one video)."),
        model: Optional[str] = typer.Option(
            None, "--model", "-m", help="Checkpoint (.safetensors) or an exported .onnx; default: $COLORBATCH_MODEL, then the newest trained model."
        ),
        size: int = typer.Option(256, "--size", help="Network resolution (the long side is fitted, aspect kept)."),
        chroma: str = typer.Option("auto", "--chroma", help="Colour strength: auto (calibrated into the model) or a scale: <1 paler and safer, >1 more vivid."),
        batch_size: int = typer.Option(8, "--batch-size", "-b", help="Images per forward pass."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | mps (auto: cuda, then mps, then cpu)."),
        workers: Optional[int] = typer.Option(None, "--workers", "-j", help="Decoding worker processes (default: from the cores)."),
        threads: Optional[int] = typer.Option(
            None, "--threads", min=1, help="Network threads on CPU (default: the free cores). Fix it, with --batch-size, to reproduce another run byte for byte."),
        fmt: Optional[str] = typer.Option(None, "--format", "-f", help="png | jpg | webp | tiff (default: the input's)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs that exist already."),
        dry_run: bool = typer.Option(False, "--dry-run", help="List what would be done; write nothing."),
        run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Also write run.json and events.jsonl here."),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON; no progress bars."),
        hints: Optional[Path] = typer.Option(
            None, "--hints", help="Folder of hint files mirroring the input tree (NAME.hints.json); sidecars beside the images are used in any case. See docs/hints.md."),
        reference: Optional[Path] = typer.Option(
            None, "--reference", help="A colour photo whose colours guide every image (a hint file's own reference wins)."),
        runtime: str = typer.Option(
            "auto", "--runtime", help="auto | torch | onnxruntime: what runs the network (auto: onnxruntime on the CPU, torch on a GPU; a .onnx --model always uses onnxruntime). See docs/speed.md."),
    ):
        """Colorize grayscale images (and, with the video plugin, videos); colour hints steer it (docs/hints.md)."""
        run_builtin_recipe(
            "colorize",
            [
                {"uses": "load", "with": {"source": input}},
                {
                    "uses": "colorize",
                    "with": {"model": model, "size": size, "batch_size": batch_size, "device": device, "workers": workers, "chroma": chroma,
                             "threads": threads,
                             "hints": str(hints) if hints else None, "reference": str(reference) if reference else None,
                             "runtime": runtime},
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
        hints: int = typer.Option(0, "--hints", min=0, help="Simulate N point hints per photo from its truth (fixed seed), as a user would give them."),
        reference: Optional[str] = typer.Option(
            None, "--reference", help="A colour photo as the global hint of every image, or 'self': each photo's own colours (the upper bound)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the simulated hints."),
        runtime: str = typer.Option(
            "auto", "--runtime", help="auto | torch | onnxruntime: what runs the network (see docs/speed.md)."),
    ):
        """Score a model on colour photos: gray them, colorize, compare with the originals (gray baseline beside each figure)."""
        run_dir = run_dir or out or Path("runs") / "evaluate"
        steps_ = [
            {"uses": "load", "with": {"source": input}},
            {"uses": "colorize", "with": {"model": model, "size": size, "batch_size": batch_size, "device": device, "workers": workers, "chroma": chroma,
                                          "simulate_hints": hints, "hint_seed": seed, "reference_self": reference == "self",
                                          "reference": reference if reference not in (None, "self") else None,
                                          "runtime": runtime}},
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
                    "hints": bool(arch.get("hints")),
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
            hints = ", takes colour hints" if r.get("hints") else ""
            out.print(f"{mark} {r['path']} ({r['encoder']}, {r['head']} head{loss}{strength}{hints})", markup=False,
                      highlight=False)
        if chosen is not None:
            out.print(f"colorize uses: {chosen}: {why}", markup=False, highlight=False)
        else:
            out.print(f"colorize has no model: {why}", markup=False, highlight=False)
