"""ONNX export and onnxruntime against torch (issue 16), in one run.

For each encoder (efficientnet-lite0: the shipped default model; resnet50: untrained
weights with the classify head, which time the same as trained ones):

* the export time (``colorbatch export``'s path: a trace, plus the metadata);
* the model alone on CPU, torch (eval, channels_last, inference mode, as the Colorizer
  runs it) and onnxruntime (the exported file, same thread count): median ms per
  batch over interleaved runs on the same input, and onnxruntime's speed-up;
* with ``--photos FOLDER``: the colorize pipeline's network output (a*b*/128 after
  chroma scaling) with torch and with onnxruntime on every photo at each ``--size``:
  the largest and mean difference (the target is 1e-3).

    python benchmarks/onnx_runtime.py --photos ../shared/data/photos-dev --size 256 --size 512

Prints a table and, with ``--json``, the figures as JSON.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _model(encoder: str, tmp: Path) -> Path:
    """The checkpoint to export: the shipped default for lite0, an untrained one otherwise."""
    from colorbatch.models.checkpoint import save_checkpoint, shipped_model

    shipped = shipped_model()
    if encoder == "efficientnet-lite0" and shipped is not None:
        return shipped
    import torch

    from colorbatch.models import build_model

    torch.manual_seed(0)
    net = build_model(encoder, "none", head="classify")
    return save_checkpoint(tmp / f"{encoder}.safetensors", net, {"benchmark": True})


def _time_pair(torch_fn, ort_fn, runs: int) -> tuple[float, float]:
    torch_fn(), ort_fn()  # warm-up (allocations, onnxruntime's first-run optimisations)
    a, b = [], []
    for _ in range(runs):
        t = time.perf_counter()
        torch_fn()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        ort_fn()
        b.append(time.perf_counter() - t)
    return statistics.median(a), statistics.median(b)


def bench_encoder(encoder: str, tmp: Path, batch: int, size: int, runs: int) -> dict:
    import torch

    from colorbatch.export import export_onnx, sample_inputs
    from colorbatch.models.checkpoint import load_checkpoint
    from colorbatch.onnx_runtime import OnnxModel

    ckpt = _model(encoder, tmp)
    done = export_onnx(ckpt, tmp / f"{encoder}.onnx")
    net, _ = load_checkpoint(ckpt)
    net = net.eval().to(memory_format=torch.channels_last)
    ort_model = OnnxModel(done.path, "cpu")
    T = ort_model.temperature
    x = sample_inputs(batch, size, size * 3 // 4 // 32 * 32, False)[0]
    xc = x.contiguous(memory_format=torch.channels_last)

    def run_torch():
        with torch.inference_mode():
            return net(xc, temperature=T)

    def run_ort():
        return ort_model(x, temperature=T)

    diff = float((run_torch() - run_ort()).abs().max())
    t_torch, t_ort = _time_pair(run_torch, run_ort, runs)
    return {"encoder": encoder, "model": ckpt.name, "export_s": round(done.seconds, 2),
            "onnx_mb": round(done.path.stat().st_size / 1e6, 1), "batch": batch,
            "input": list(x.shape[-2:]), "torch_ms": round(t_torch * 1e3, 1), "onnxruntime_ms": round(t_ort * 1e3, 1),
            "speedup": round(t_torch / t_ort, 2), "max_abs_diff": diff}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoder", action="append", help="efficientnet-lite0 and/or resnet50 (default: both)")
    ap.add_argument("--photos", type=Path, help="a folder of photos for the pipeline comparison")
    ap.add_argument("--size", type=int, action="append", help="network size(s) for --photos (default 256 512)")
    ap.add_argument("--bench-size", type=int, default=256, help="long side of the timing input")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads for both (default: torch's)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)

    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    encoders = a.encoder or ["efficientnet-lite0", "resnet50"]
    sizes = a.size or [256, 512]
    out = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    try:
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        print("onnxruntime is not installed: pip install colorbatch[onnx]", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out["encoders"] = [bench_encoder(e, tmp, a.batch, a.bench_size, a.runs) for e in encoders]
        if a.photos:
            from colorbatch.export_commands import compare_on_photos
            from colorbatch.models.checkpoint import shipped_model

            onnx_path = tmp / "efficientnet-lite0.onnx"
            if not onnx_path.is_file():
                from colorbatch.export import export_onnx

                export_onnx(shipped_model(), onnx_path)
            out["photos"] = [compare_on_photos(shipped_model(), onnx_path, a.photos, s) for s in sizes]
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"CPU, {out['threads']} threads, torch {out['torch']}, onnxruntime {out['onnxruntime']}")
    print(f"{'encoder':20} {'export s':>8} {'input':>14} {'torch ms':>9} {'ort ms':>8} {'speed-up':>8} {'max diff':>9}")
    for r in out["encoders"]:
        shape = f"{r['batch']}x{r['input'][0]}x{r['input'][1]}"
        print(f"{r['encoder']:20} {r['export_s']:8.1f} {shape:>14} {r['torch_ms']:9.1f} {r['onnxruntime_ms']:8.1f} "
              f"{r['speedup']:8.2f} {r['max_abs_diff']:9.1e}")
    for r in out.get("photos", []):
        print(f"photos ({r['images']}) at --size {r['size']}: a*b*/128 max diff {r['max_abs']:.1e}, mean {r['mean_abs']:.1e}"
              f" (target 1e-3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
