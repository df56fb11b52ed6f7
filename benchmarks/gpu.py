"""GPU figures in one call: the model alone, the pipeline files to files at 2 MP, peak GPU memory.

    pip install -e . && python benchmarks/gpu.py [--images 512] [--megapixels 2] [--size 256]
        [--batch-size 64] [--encoder efficientnet-lite0] [--model-batches 64,256] [--workers N]

Meant for a fresh GPU machine, the whole call (install included) well under 5 minutes.
Where the machine cannot reach a package index but already has torch, torchvision,
numpy, pillow and the rest, ``pip install --no-deps --no-build-isolation -e .`` installs
colorbatch alone (missing pure-Python dependencies can be installed from wheels).

Measures, with an untrained model (``encoder_weights = "none"``: speed does not depend
on the weights):

  (a) the model alone on the GPU: ready (B, 1, h, w) batches at the network size,
      under the colorizer's autocast (bf16 on CUDA), synchronised timing, for each
      batch size in --model-batches; the best is reported;
  (b) the pipeline: ``colorbatch colorize --device DEVICE`` from generated JPEGs
      (quality 92, about --megapixels each) to files, in a subprocess; steady state
      (images written after the first batch, from the files' times), and overall; how many
      outputs were encoded on the GPU (the ``saved`` events say so); then (unless
      ``--no-cpu-encode-run``) once more with ``COLORBATCH_GPU_ENCODE=0``, the CPU
      encoding every JPEG, for the difference the device encoder makes;
  (m) peak GPU memory: the allocator's peak in the model benchmark and in the
      pipeline process (torch.cuda.max_memory_allocated, reported by the child at
      exit), and the device-wide peak sampled during the pipeline (mem_get_info,
      CUDA context and libraries included).

Without CUDA it says "no CUDA" and exits 0. ``--device cpu`` is a dry mode that runs
everything on the CPU (use tiny sizes: ``--images 4 --megapixels 0.05 --size 64``) to
check the script itself. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

_CHILD = r"""
import atexit, json, sys

def _report():
    try:
        import torch
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            print("GPU_PEAK " + json.dumps({"alloc_mb": torch.cuda.max_memory_allocated() / 2**20,
                                            "reserved_mb": torch.cuda.max_memory_reserved() / 2**20}),
                  file=sys.stderr, flush=True)
    except Exception as exc:
        print("GPU_PEAK " + json.dumps({"error": str(exc)}), file=sys.stderr, flush=True)

atexit.register(_report)
from colorbatch.cli import main
main(sys.argv[1:])
"""


def _make_image(job):
    """One synthetic photo-like JPEG: smooth gradients, shapes and grain (not flat)."""
    import numpy as np
    from PIL import Image

    path, w, h, seed = job
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.empty((h, w, 3), np.float32)
    for c in range(3):
        fx, fy, ph = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 6.28)
        base[..., c] = 0.5 + 0.35 * np.sin(fx * x / w * 6.28 + ph) * np.cos(fy * y / h * 6.28)
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.2) * min(w, h)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < r * r
        base[mask] = rng.uniform(0, 1, 3)
    base += rng.normal(0, 0.03, (h, w, 1)).astype(np.float32)
    Image.fromarray((np.clip(base, 0, 1) * 255).astype(np.uint8)).save(path, quality=92)
    return path


def make_inputs(folder: Path, n: int, megapixels: float, distinct: int = 16) -> list[Path]:
    """``n`` JPEGs of about ``megapixels`` (4:3): ``distinct`` generated in parallel, the rest copies."""
    import multiprocessing as mp
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    w = max(8, round((megapixels * 1e6 * 4 / 3) ** 0.5))
    h = max(6, round(w * 3 / 4))
    jobs = [(folder / f"{i:05d}.jpg", w, h, i) for i in range(min(n, distinct))]
    procs = max(1, min(len(jobs), os.cpu_count() or 1))
    with mp.get_context("fork").Pool(procs) as pool:
        made = pool.map(_make_image, jobs)
    for i in range(len(made), n):
        shutil.copyfile(made[i % len(made)], folder / f"{i:05d}.jpg")
    return sorted(folder.glob("*.jpg"))


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_model(model, device, shape, batches, seconds):
    """{batch: img/s} of the model alone, as Colorizer.forward runs it (autocast, inference mode)."""
    import torch

    from colorbatch.colorizer import pad_batch
    from colorbatch.device import autocast

    out = {}
    for b in batches:
        x = pad_batch([torch.rand(1, *shape) for _ in range(b)]).to(device)
        if device.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), autocast(device):
            for _ in range(3):  # warm-up: cuDNN algorithm choice, allocator
                model(x)
            _sync(device)
            n, t0 = 0, time.perf_counter()
            while True:
                model(x)
                n += 1
                if n % 4 == 0 or device.type == "cpu":
                    _sync(device)
                    if time.perf_counter() - t0 >= seconds and n >= 2:
                        break
            _sync(device)
            dt = time.perf_counter() - t0
        out[b] = b * n / dt
        del x
    return out


class _MemSampler(threading.Thread):
    """Device-wide used memory (MB) sampled every ``period`` s: the peak above ``base``."""

    def __init__(self, device, period=0.05):
        super().__init__(daemon=True)
        self.device, self.period = device, period
        self.peak = 0.0
        self._stop_event = threading.Event()

    def used(self):
        import torch

        free, total = torch.cuda.mem_get_info(self.device)
        return (total - free) / 2**20

    def run(self):
        while not self._stop_event.is_set():
            try:
                self.peak = max(self.peak, self.used())
            except Exception:  # noqa: BLE001 - a sampler must not break the benchmark
                return
            time.sleep(self.period)

    def stop(self):
        self._stop_event.set()
        self.join(timeout=2)


def bench_pipeline(inputs_dir: Path, ckpt: Path, out_dir: Path, args, device, env_extra=None):
    """Run ``colorbatch colorize`` in a subprocess; returns a dict of figures."""
    run_dir = out_dir.parent / (out_dir.name + "-run")
    cmd = [sys.executable, "-c", _CHILD, "colorize", str(inputs_dir), "--out", str(out_dir), "--model", str(ckpt),
           "--size", str(args.size), "--batch-size", str(args.batch_size), "--device", args.device, "--json",
           "--run-dir", str(run_dir)]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    env = {**os.environ, "COLORBATCH_NO_PLUGINS": "1", **(env_extra or {})}
    sampler = None
    base = 0.0
    if device.type == "cuda":
        import torch

        torch.cuda.empty_cache()
        sampler = _MemSampler(device)
        base = sampler.used()
        sampler.start()
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if sampler is not None:
        sampler.stop()
    if r.returncode not in (0, 1):
        raise SystemExit(f"pipeline failed ({r.returncode}): {r.stderr[-3000:]}")
    summary = json.loads(r.stdout)
    saved = [e for e in map(json.loads, (run_dir / "events.jsonl").read_text().splitlines()) if e["event"] == "saved"]
    from colorize import steady_rate  # benchmarks/colorize.py: from the output files' times

    steady = steady_rate(out_dir, args.batch_size)
    peak = {}
    for line in r.stderr.splitlines():
        if line.startswith("GPU_PEAK "):
            peak = json.loads(line[len("GPU_PEAK "):])
    return {
        "ok": summary.get("ok"), "failed": summary.get("failed"), "wall_s": wall,
        "steady_img_s": steady, "overall_img_s": (summary.get("ok") or 0) / wall,
        "peak_alloc_mb": peak.get("alloc_mb"), "peak_reserved_mb": peak.get("reserved_mb"),
        "peak_device_mb": (sampler.peak - base) if sampler is not None else None,
        "encoded_on_device": sum(1 for e in saved if e.get("encoded") == "device"),
    }


def _r(v, nd=1):
    return None if v is None else round(v, nd)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (a dry run of this script)")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--megapixels", type=float, default=2.0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64, help="the pipeline's --batch-size")
    ap.add_argument("--model-batches", default="64,256", help="batch sizes for the model alone")
    ap.add_argument("--model-seconds", type=float, default=5.0)
    ap.add_argument("--encoder", default="efficientnet-lite0")
    ap.add_argument("--workers", type=int, default=None, help="the pipeline's decoding workers (default: its own)")
    ap.add_argument("--no-cpu-encode-run", action="store_true",
                    help="skip the second pipeline run with COLORBATCH_GPU_ENCODE=0 (JPEGs encoded by the CPU)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA: torch sees no GPU here; nothing to measure (use --device cpu for a dry run)")
        print(json.dumps({"cuda": False}))
        return 0
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        gpu = torch.cuda.get_device_name(device)
    else:
        gpu = None

    from colorbatch.colorizer import net_shape
    from colorbatch.models import build_model
    from colorbatch.models.checkpoint import save_checkpoint

    with tempfile.TemporaryDirectory(prefix="colorbatch-gpu-") as tmpname:
        tmp = Path(tmpname)
        t0 = time.perf_counter()
        inputs = make_inputs(tmp / "in", args.images, args.megapixels)
        from PIL import Image

        with Image.open(inputs[0]) as im:
            W, H = im.size
        print(f"{len(inputs)} JPEGs of {W}x{H} ({W * H / 1e6:.2f} MP) made in {time.perf_counter() - t0:.1f} s; "
              f"device {device}{' (' + gpu + ')' if gpu else ''}; {os.cpu_count()} CPUs; torch {torch.__version__}",
              flush=True)

        torch.manual_seed(0)
        model = build_model(args.encoder, "none").eval()
        ckpt = save_checkpoint(tmp / "model.safetensors", model, {"benchmark": True})
        model = model.to(device)
        shape = net_shape(H, W, args.size)
        batches = [int(b) for b in args.model_batches.split(",") if b.strip()]
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        rates = bench_model(model, device, shape, batches, args.model_seconds)
        model_peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        best_b = max(rates, key=rates.get)
        print("(a) model alone at " + f"{shape}: " + ", ".join(f"batch {b}: {v:.0f} img/s" for b, v in rates.items())
              + (f"; peak allocated {model_peak:.0f} MB" if model_peak is not None else ""), flush=True)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()

        p = bench_pipeline(tmp / "in", ckpt, tmp / "out", args, device)
        mem = ""
        if p["peak_alloc_mb"] is not None:
            mem = f"; peak GPU memory allocated {p['peak_alloc_mb']:.0f} MB (reserved {p['peak_reserved_mb']:.0f} MB)"
        if p["peak_device_mb"] is not None:
            mem += f", device-wide {p['peak_device_mb']:.0f} MB"
        print(f"(b) pipeline files->files, --batch-size {args.batch_size}: {p['ok']} ok, {p['failed']} failed; "
              f"steady state {p['steady_img_s']:.1f} img/s; {p['overall_img_s']:.1f} img/s overall "
              f"({p['wall_s']:.1f} s with start-up){mem}; {p['encoded_on_device']} outputs encoded on the GPU",
              flush=True)
        q = None
        if not args.no_cpu_encode_run:
            q = bench_pipeline(tmp / "in", ckpt, tmp / "out-cpu-encode", args, device, {"COLORBATCH_GPU_ENCODE": "0"})
            print(f"(b') the same, JPEGs encoded by the CPU (COLORBATCH_GPU_ENCODE=0): steady state "
                  f"{q['steady_img_s']:.1f} img/s; {q['overall_img_s']:.1f} img/s overall; "
                  f"{q['encoded_on_device']} outputs encoded on the GPU", flush=True)
        print(f"pipeline / model = {p['steady_img_s'] / rates[best_b]:.3f}; target on an H200: >= 1000 img/s "
              f"files to files at 2 MP, --size 256", flush=True)
        result = {
            "cuda": device.type == "cuda", "device": str(device), "gpu": gpu, "torch": torch.__version__,
            "cpus": os.cpu_count(), "encoder": args.encoder, "size": args.size, "images": len(inputs),
            "megapixels": round(W * H / 1e6, 3),
            "model_img_s": _r(rates[best_b]), "model_batch": best_b,
            "model_img_s_by_batch": {str(b): _r(v) for b, v in rates.items()},
            "model_peak_gpu_mb": _r(model_peak),
            "pipeline_img_s": _r(p["steady_img_s"], 2), "pipeline_overall_img_s": _r(p["overall_img_s"], 2),
            "pipeline_batch_size": args.batch_size, "pipeline_ok": p["ok"], "pipeline_failed": p["failed"],
            "pipeline_peak_gpu_alloc_mb": _r(p["peak_alloc_mb"]), "pipeline_peak_gpu_reserved_mb": _r(p["peak_reserved_mb"]),
            "pipeline_peak_gpu_device_mb": _r(p["peak_device_mb"]),
            "pipeline_encoded_on_device": p["encoded_on_device"],
            "pipeline_cpu_encode_img_s": _r(q["steady_img_s"], 2) if q else None,
            "pipeline_cpu_encode_overall_img_s": _r(q["overall_img_s"], 2) if q else None,
            "seconds": round(time.perf_counter() - t_start, 1),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
