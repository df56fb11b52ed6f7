"""The ``export`` command: a trained model to ONNX, checked against torch (registered by the core plugin).

``colorbatch export [MODEL] --format onnx --out model.onnx [--verify] [--verify-on PHOTOS]``;
see :mod:`colorbatch.export` for what the file holds and docs/deploy.md for using it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from colorbatch.commands import handle_errors
from colorbatch.errors import ColorbatchError


def photo_smalls(folder, size: int, limit: int = 0) -> list:
    """The network inputs ((1, h, w) L*/100) of the images in ``folder`` at ``size``, as the colorize step makes them."""
    from colorbatch.colorizer import prepare_item
    from colorbatch.images import IMAGE_EXTENSIONS
    from colorbatch.item import Item

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if limit:
        files = files[:limit]
    if not files:
        raise ColorbatchError(f"--verify-on {folder}: no images there")
    out = []
    for p in files:
        prep = prepare_item(Item(id=p.name, path=p), size, compact=False, want_rgb=False)
        if "error" in prep:
            raise ColorbatchError(f"--verify-on: {p.name}: {prep['error']}")
        out.append(prep["small"])
    return out


def compare_on_photos(model, onnx_path, folder, size: int, batch_size: int = 4, limit: int = 0) -> dict:
    """The colorize pipeline's network output (a*b*/128 after chroma scaling) with torch and with
    onnxruntime on the photos of ``folder`` -> ``{"max_abs", "mean_abs", "images", "size"}``."""
    import torch

    from colorbatch.colorizer import Colorizer

    smalls = photo_smalls(folder, size, limit)
    ref = Colorizer(model, "cpu", size, batch_size)
    got = Colorizer(str(onnx_path), "cpu", size, batch_size)
    a, b = ref.predict_small(smalls), got.predict_small(smalls)
    diffs = [(x.float() - y.float()).abs() for x, y in zip(a, b)]
    return {"size": size, "images": len(smalls), "max_abs": float(max(d.max() for d in diffs)),
            "mean_abs": float(torch.cat([d.flatten() for d in diffs]).mean())}


def register(app) -> None:
    """Add ``export`` to ``app``."""

    @app.command()
    @handle_errors
    def export(
        model: Optional[str] = typer.Argument(
            None, help="Checkpoint (.safetensors); default: the model `colorize` would use."),
        out: Path = typer.Option(..., "--out", "-o", help="The file to write (model.onnx)."),
        fmt: str = typer.Option("onnx", "--format", "-f", help="onnx (the one format so far)."),
        opset: int = typer.Option(17, "--opset", help="ONNX opset of the graph (recorded in its metadata)."),
        fp16: bool = typer.Option(False, "--fp16", help="Half-precision weights and arithmetic inside (for GPU runtimes); inputs and output stay float32."),
        exporter: str = typer.Option("torchscript", "--exporter", help="torchscript (a trace, seconds) | dynamo (torch.export: minutes here, opset >= 18, no hint inputs)."),
        verify: bool = typer.Option(False, "--verify", help="Run torch and onnxruntime on sample inputs (two sizes, two batch sizes) and report the largest a*b* difference."),
        verify_on: Optional[Path] = typer.Option(None, "--verify-on", help="Also compare the colorize pipeline's a*b* on the photos in this folder (implies --verify)."),
        sizes: List[int] = typer.Option([256], "--size", help="Network size(s) for --verify-on (repeatable)."),
        tolerance: float = typer.Option(1e-3, "--tolerance", help="Largest a*b*/128 difference --verify accepts (exit 1 above it)."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ):
        """Export a model to ONNX (dynamic batch, height and width; metadata inside) and optionally verify it against torch."""
        if fmt.lower() != "onnx":
            raise ColorbatchError(f"--format {fmt}: only onnx is supported")
        from colorbatch.export import export_onnx
        from colorbatch.models.checkpoint import discover_model

        src = discover_model(model)
        done = export_onnx(src, out, opset=opset, fp16=fp16, exporter=exporter)
        info = done.meta["onnx"]
        result = {"out": str(done.path), "model": str(src), "id": done.props["id"], "seconds": round(done.seconds, 2),
                  "bytes": done.path.stat().st_size, "opset": info["opset"], "precision": info["precision"],
                  "temperature": info["temperature"], "hint_inputs": info["hint_inputs"], "multiple": info["multiple"]}
        ok = True
        if verify or verify_on is not None:
            from colorbatch.export import verify as run_verify

            check = run_verify(src, done.path)
            result["verify"] = check
            ok = check["max_abs"] <= tolerance
            if verify_on is not None:
                result["photos"] = [compare_on_photos(src, done.path, verify_on, s) for s in sizes]
                ok = ok and all(r["max_abs"] <= tolerance for r in result["photos"])
            result["ok"] = ok
        if json_out:
            typer.echo(json.dumps(result, indent=2))
        else:
            hints = ", hint inputs " + " ".join(info["hint_inputs"]) if info["hint_inputs"] else ""
            typer.echo(f"wrote {done.path} ({result['bytes'] / 1e6:.1f} MB, opset {info['opset']}, {info['precision']}, "
                       f"temperature {info['temperature']:g} baked in{hints}) in {done.seconds:.1f} s")
            if "verify" in result:
                for c in result["verify"]["cases"]:
                    typer.echo(f"verify batch {c['batch']} x {c['height']} x {c['width']}: "
                               f"max |a*b* torch - onnxruntime| = {c['max_abs']:.2e} (/128 scale)")
                for r in result.get("photos", []):
                    typer.echo(f"verify {r['images']} photos at --size {r['size']}: max {r['max_abs']:.2e}, "
                               f"mean {r['mean_abs']:.2e} (/128 scale)")
                typer.echo(f"{'ok' if ok else 'FAILED'}: tolerance {tolerance:g}")
        if not ok:
            raise typer.Exit(1)
