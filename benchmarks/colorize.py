"""Colorize speed and memory: the model alone, the I/O floor, the full pipeline, a naive loop.

    python benchmarks/colorize.py FOLDER [--size 256] [--batch-size 8] [--encoder efficientnet-lite0]
                                  [--megapixels 2] [--limit 24] [--naive-limit 6] [--huge]
                                  [--floor-runs 3] [--pipeline-runs 1] [--kernels on|off|auto]
                                  [--baseline REV]

FOLDER holds images (JPEG photos). With ``--megapixels M`` each is first
upscaled to about M megapixels (photos for the targets are 1-3 MP; small
development photos can stand in for them this way). The model is untrained
(``encoder_weights = "none"``): speed does not depend on the weights.

Measures images/s for
  (a) the model alone on ready (B, 1, h, w) tensors at the network size,
  (b) the full ``colorbatch colorize`` pipeline from files to files (a
      subprocess, default workers; includes model loading; the median of
      --pipeline-runs runs),
  (f) the I/O floor: decode and re-encode each input JPEG at full size with PIL
      (quality 95, as the save step writes), one process per core, no colour work;
      the median of --floor-runs runs. With the model it bounds the pipeline:
      limit = 1 / (1 / floor + 1 / model), and pipeline / limit says how far from
      that physical bound the pipeline is,
  (c) a naive reference loop: PIL open, skimage rgb2lab, batch 1, skimage
      resize of a*b* and lab2rgb at full resolution, PIL save,
plus the peak resident memory of the pipeline process, the decoder/encoder cost
ratio, and with ``--huge`` the peak memory for one 50-megapixel gray image.
``--baseline REV`` also runs the pipeline of the git revision REV (its ``colorbatch``
package, from ``git archive``) in turns with this checkout's, the same number of runs,
against the same limit: a before/after comparison from one run on a busy machine (the
peak RSS is then the larger of the two).
The last line is one JSON object (with ``io_floor_img_s`` and ``limit_img_s``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXTS = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp"}


def _images(folder: Path, limit: int):
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTS and p.is_file())
    return files[:limit]


def _prepare_inputs(files, megapixels, dest: Path):
    from PIL import Image

    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i, f in enumerate(files):
        with Image.open(f) as im:
            im = im.convert("RGB")
            if megapixels:
                s = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
                im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
            p = dest / f"{i:03d}-{f.stem}.jpg"
            im.save(p, quality=92)
            out.append(p)
    return out


def bench_model(model, shape, batch, seconds=12.0):
    import torch

    from colorbatch.colorizer import pad_batch

    x = pad_batch([torch.rand(1, *shape) for _ in range(batch)]).contiguous(memory_format=torch.channels_last)
    model = model.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        model(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or n < 2:
            model(x)
            n += 1
        full = (time.perf_counter() - t0) / n
        model.encoder(x)
        m, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 2 or m < 2:
            model.encoder(x)
            m += 1
        enc = (time.perf_counter() - t0) / m
    return batch / full, (full - enc) / enc, tuple(x.shape)


def bench_model_onnx(ckpt, shape, batch, threads, seconds=12.0):
    """The network alone on onnxruntime (the checkpoint's cached export): img/s at ``batch``."""
    import numpy as np

    from colorbatch.colorizer import load_model, pad_batch_np

    model = load_model(ckpt, "cpu", "onnxruntime", threads)[0]
    x = pad_batch_np([np.random.default_rng(0).random((1, *shape), dtype=np.float32) for _ in range(batch)])
    t = model.temperature if model.head == "classify" else None
    model(x, temperature=t)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 2:
        model(x, temperature=t)
        n += 1
    return batch * n / (time.perf_counter() - t0)


def flops_ratio(model, shape):
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.rand(1, 1, *shape)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as fc:
            feats = model.encoder(x)
        enc = fc.get_total_flops()
        with FlopCounterMode(display=False) as fc:
            model.decoder(feats, tuple(shape))
        return enc / 1e9, fc.get_total_flops() / 1e9


def baseline_tree(rev: str, dest: Path) -> Path:
    """The ``colorbatch`` package of git revision ``rev`` of this checkout, under ``dest``
    (put first on PYTHONPATH, it stands in for the installed one)."""
    import io
    import tarfile

    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", rev, "colorbatch"], capture_output=True)
    if r.returncode:
        raise SystemExit(f"--baseline {rev}: {r.stderr.decode(errors='replace').strip()}")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def bench_pipeline(inputs_dir, ckpt, args, out_dir, pythonpath: Path | None = None):
    """Run `colorbatch colorize` (the package under ``pythonpath`` when given); returns
    (summary, wall seconds, steady-state img/s).

    The steady-state rate: images written after the first batch, over the time since
    the first batch was written (start-up, imports and model loading excluded), from
    the output files' times (:func:`steady_rate`).
    """
    run_dir = out_dir.parent / (out_dir.name + "-run")
    cmd = [sys.executable, "-m", "colorbatch", "colorize", str(inputs_dir), "--out", str(out_dir),
           "--model", str(ckpt), "--size", str(args.size), "--batch-size", str(args.batch_size), "--json",
           "--run-dir", str(run_dir)]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    cmd += ["--runtime", args.runtime]
    env = {**os.environ, "COLORBATCH_NO_PLUGINS": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(x for x in (str(pythonpath), env.get("PYTHONPATH")) if x)
    if args.kernels != "auto":  # on: the fused kernels even for a short run (a long run's steady state)
        env["COLORBATCH_KERNELS"] = "1" if args.kernels == "on" else "0"
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode not in (0, 1):
        raise SystemExit(f"pipeline failed ({r.returncode}): {r.stderr[-2000:]}")
    summary = json.loads(r.stdout)
    return summary, wall, steady_rate(out_dir, args.batch_size)


def steady_rate(out_dir: Path, batch: int) -> float:
    """Images/s after the first ``batch`` outputs: images written since, over the time since,
    from the output files' modification times (when each was written; the ``saved`` events
    of writes done in the background come later, at the step's next item)."""
    times = sorted(p.stat().st_mtime for p in out_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
    b = min(batch, len(times) - 1)
    return (len(times) - b) / (times[-1] - times[b - 1]) if b >= 1 and times[-1] > times[b - 1] else float("nan")


def _decode_encode(job):
    """Decode one JPEG at full size and encode it again (the floor's unit of work)."""
    from PIL import Image

    src, dest = job
    with Image.open(src) as im:
        im.load()
        im.save(dest, quality=95)
    return 1


def _noop(_):
    return 0


def io_floor(files, processes: int, out_dir: Path, runs: int = 3) -> float:
    """Images/s of decoding and re-encoding ``files`` with PIL in ``processes`` worker
    processes (started before the clock); the median of ``runs`` runs."""
    import multiprocessing as mp
    import statistics

    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(str(f), str(out_dir / f"{i:04d}.jpg")) for i, f in enumerate(files)]
    rates = []
    with mp.get_context("fork").Pool(processes) as pool:
        pool.map(_noop, range(processes))
        for _ in range(max(1, runs)):
            t0 = time.perf_counter()
            n = sum(pool.imap_unordered(_decode_encode, jobs, chunksize=1))
            rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def peak_child_rss_mb():
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def bench_naive(files, model, size, out_dir):
    import numpy as np
    import torch
    from PIL import Image
    from skimage import color, transform

    from colorbatch.colorizer import net_shape

    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for f in files:
        rgb = np.asarray(Image.open(f).convert("RGB"), dtype=np.float64) / 255.0
        L = color.rgb2lab(rgb)[..., 0]
        h, w = net_shape(*L.shape, size)
        small = transform.resize(L / 100.0, (h, w), anti_aliasing=True)
        with torch.inference_mode():
            ab = model(torch.from_numpy(small).float()[None, None])[0].numpy() * 128.0
        ab = transform.resize(ab.transpose(1, 2, 0), L.shape, order=1)
        out = color.lab2rgb(np.dstack([L, ab]))
        Image.fromarray((out * 255).round().astype(np.uint8)).save(out_dir / f.name, quality=95)
    return len(files) / (time.perf_counter() - t0)


def huge_rss(ckpt, size, tmp: Path):
    """Peak RSS (MB) of colorizing one 50-megapixel gray JPEG, in a fresh process."""
    import numpy as np
    from PIL import Image

    src = tmp / "huge"
    src.mkdir()
    w, h = 8660, 5774  # 50.0 MP
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    img = ((x * 0.6 + y * 0.4) % 256).astype(np.uint8)
    Image.fromarray(img, "L").save(src / "huge.jpg", quality=90)
    del img
    code = (
        "import json,resource,subprocess,sys\n"
        f"r=subprocess.run([sys.executable,'-m','colorbatch','colorize',{str(src)!r},'--out',{str(tmp / 'huge-out')!r},"
        f"'--model',{str(ckpt)!r},'--size','{size}','--json'],capture_output=True,text=True)\n"
        "s=json.loads(r.stdout)\n"
        "print(json.dumps({'ok':s['ok'],'failed':s['failed'],'seconds':s['seconds'],"
        "'peak_rss_mb':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024}))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "COLORBATCH_NO_PLUGINS": "1", "COLORBATCH_MAX_PIXELS": "0"})
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--encoder", default="efficientnet-lite0")
    ap.add_argument("--model", default=None,
                    help="a checkpoint to measure instead of an untrained model of --encoder ('default': the one "
                         "colorize picks, e.g. the shipped default with its classify head and hint inputs)")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for (a) and (c), OMP_NUM_THREADS cap for (b) (default: the free cores, as the pipeline; "
                    "on a busy shared machine 1 is fairer)")
    ap.add_argument("--megapixels", type=float, default=2.0, help="upscale inputs to ~M MP (0: as they are)")
    ap.add_argument("--limit", type=int, default=16)
    ap.add_argument("--copies", type=int, default=3, help="each input is used this many times (longer run)")
    ap.add_argument("--naive-limit", type=int, default=6)
    ap.add_argument("--model-seconds", type=float, default=10.0)
    ap.add_argument("--huge", action="store_true", help="also measure one 50 MP gray image")
    ap.add_argument("--floor-runs", type=int, default=3, help="runs of the I/O floor (median)")
    ap.add_argument("--pipeline-runs", type=int, default=1, help="runs of the pipeline (median)")
    ap.add_argument("--runtime", choices=("auto", "torch", "onnxruntime"), default="auto",
                    help="what runs the network in the pipeline (auto: onnxruntime on a CPU, as colorize "
                         "does); the model-alone figure is measured on the same runtime")
    ap.add_argument("--kernels", choices=("on", "off", "auto"), default="on",
                    help="fused CPU kernels in the pipeline: on (default: as in a long run, even for few "
                         "images), off (the torch reference path), auto (colorize's own choice: not "
                         "for runs under 48 images)")
    ap.add_argument("--baseline", metavar="REV", default=None,
                    help="also run the pipeline of this git revision (e.g. HEAD~1), in turns with the checkout's")
    args = ap.parse_args(argv)

    import torch

    from colorbatch.colorizer import net_shape
    from colorbatch.device import configure_threads, cpu_cores, tune_malloc
    from colorbatch.models import build_model
    from colorbatch.models.checkpoint import save_checkpoint

    tune_malloc()
    # as the pipeline sizes its own threads: never more than the free cores (on a busy
    # 2-core machine 2 torch threads ran the model 7x slower than 1)
    threads = args.threads or configure_threads("cpu", 0)
    torch.set_num_threads(threads)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    files = _images(args.folder, args.limit)
    if not files:
        raise SystemExit(f"{args.folder}: no images")
    result = {}
    with tempfile.TemporaryDirectory(prefix="colorbatch-bench-") as tmpname:
        tmp = Path(tmpname)
        inputs = _prepare_inputs(files, args.megapixels, tmp / "in")
        import shutil

        for c in range(1, args.copies):
            for p in list(inputs[: len(files)]):
                q = p.with_name(f"{p.stem}-copy{c}{p.suffix}")
                shutil.copyfile(p, q)
                inputs.append(q)
        from PIL import Image

        with Image.open(inputs[0]) as im:
            full = (im.height, im.width)
        mp = sum(Image.open(p).width * Image.open(p).height for p in inputs) / len(inputs) / 1e6
        shape = net_shape(*full, args.size)
        if args.model:  # a real checkpoint (e.g. the shipped default: classify head, hint inputs)
            from colorbatch.models.checkpoint import discover_model, load_checkpoint

            ckpt = discover_model(None if args.model == "default" else args.model)
            model, meta = load_checkpoint(ckpt, device="cpu")
            model = model.eval()
            args.encoder = f"{(meta.get('model') or {}).get('encoder', '?')} ({Path(ckpt).name})"
        else:
            torch.manual_seed(0)
            model = build_model(args.encoder, "none").eval()
            ckpt = save_checkpoint(tmp / "model.safetensors", model, {"benchmark": True})
        print(f"{len(inputs)} images, {mp:.2f} MP on average; network input {shape} (size {args.size}); "
              f"encoder {args.encoder}; {cpu_cores()} cores, {threads} torch threads", flush=True)

        gflop_enc, gflop_dec = flops_ratio(model, shape)
        model_img_s, dec_time_ratio, xshape = bench_model(model, shape, args.batch_size, args.model_seconds)
        print(f"(a) model alone on torch, batch {xshape}: {model_img_s:.2f} img/s; decoder/encoder cost: "
              f"{gflop_dec / gflop_enc:.2f}x in FLOPs ({gflop_enc:.2f} vs {gflop_dec:.2f} GFLOP/img), "
              f"{dec_time_ratio:.2f}x in time", flush=True)
        from colorbatch.onnx_runtime import resolve_runtime

        runtime = resolve_runtime(ckpt, args.runtime, "cpu")
        torch_model_img_s = model_img_s
        if runtime == "onnxruntime":  # the limit uses the network the pipeline runs
            os.environ["COLORBATCH_CACHE"] = str(tmp / "cache")  # the pipeline's export too
            model_img_s = bench_model_onnx(ckpt, shape, args.batch_size, threads, args.model_seconds)
            print(f"    model alone on onnxruntime (what the pipeline runs): {model_img_s:.2f} img/s "
                  f"({model_img_s / torch_model_img_s:.2f}x torch)", flush=True)

        runs, base_runs = [], []
        base = baseline_tree(args.baseline, tmp / "baseline") if args.baseline else None
        for r in range(max(1, args.pipeline_runs)):
            order = [None, base] if r % 2 == 0 else [base, None]  # in turns, each first in every other round
            for path in order:
                if path is None:
                    runs.append(bench_pipeline(tmp / "in", ckpt, args, tmp / f"out{r}") + (peak_child_rss_mb(),))
                elif base is not None:
                    base_runs.append(bench_pipeline(tmp / "in", ckpt, args, tmp / f"base{r}", base)[2])
        rates = [r[2] for r in runs]
        runs.sort(key=lambda x: x[2])
        summary, wall, pipeline_img_s, peak = runs[len(runs) // 2]
        import statistics

        base_img_s = statistics.median(base_runs) if base_runs else None
        if len(inputs) < 4 * args.batch_size:
            print(f"note: {len(inputs)} images are fewer than 4 batches of {args.batch_size}: the steady state "
                  "is then the last batch or two and reads too high (use --limit/--copies for 48 or more)",
                  flush=True)
        overall = summary["ok"] / wall
        print(f"(b) pipeline files->files: {summary['ok']} ok, {summary['failed']} failed; steady state "
              f"{pipeline_img_s:.2f} img/s; {overall:.2f} img/s overall ({wall:.1f} s including start-up "
              f"and model loading); peak RSS {peak:.0f} MB"
              + (f"; median of {len(runs)} runs ({', '.join(f'{x:.2f}' for x in rates)})" if len(runs) > 1 else ""),
              flush=True)

        # after the pipeline: its peak RSS (of children) must not include the floor's processes
        floor_img_s = io_floor(inputs, args.workers or cpu_cores(), tmp / "floor", args.floor_runs)
        limit_img_s = 1.0 / (1.0 / floor_img_s + 1.0 / model_img_s)
        print(f"(f) I/O floor (PIL decode + re-encode at full size, {args.workers or cpu_cores()} processes): "
              f"{floor_img_s:.2f} img/s; limit with the model 1 / (1/floor + 1/model) = {limit_img_s:.2f} img/s",
              flush=True)
        print(f"pipeline / limit = {pipeline_img_s / limit_img_s:.2f} (target >= 0.5); "
              f"pipeline / floor = {pipeline_img_s / floor_img_s:.2f}", flush=True)
        if base_img_s is not None:
            print(f"baseline {args.baseline}: steady state {base_img_s:.2f} img/s (runs {', '.join(f'{x:.2f}' for x in base_runs)}); "
                  f"baseline / limit = {base_img_s / limit_img_s:.2f}; this checkout / baseline = "
                  f"{pipeline_img_s / base_img_s:.2f}", flush=True)

        torch.set_num_threads(threads)
        naive_files = inputs[: args.naive_limit]
        naive_img_s = bench_naive(naive_files, model, args.size, tmp / "naive")
        print(f"(c) naive loop ({len(naive_files)} images): {naive_img_s:.2f} img/s", flush=True)
        print(f"pipeline / model = {pipeline_img_s / model_img_s:.2f} (target >= 0.6); "
              f"pipeline / naive = {pipeline_img_s / naive_img_s:.2f} (target >= 3)", flush=True)
        result = {
            "model_img_s": round(model_img_s, 3),
            "model_torch_img_s": round(torch_model_img_s, 3),
            "runtime": runtime,
            "pipeline_img_s": round(pipeline_img_s, 3),
            "io_floor_img_s": round(floor_img_s, 3),
            "limit_img_s": round(limit_img_s, 3),
            "pipeline_over_limit": round(pipeline_img_s / limit_img_s, 3),
            "naive_img_s": round(naive_img_s, 3),
            "peak_rss_mb": round(peak, 1),
            "pipeline_overall_img_s": round(overall, 3),
            "images": len(inputs),
            "megapixels": round(mp, 2),
            "encoder": args.encoder,
            "kernels": args.kernels,
            "size": args.size,
            "decoder_flops_ratio": round(gflop_dec / gflop_enc, 3),
            "decoder_time_ratio": round(dec_time_ratio, 3),
        }
        if base_img_s is not None:
            result.update(baseline=args.baseline, baseline_pipeline_img_s=round(base_img_s, 3),
                          baseline_over_limit=round(base_img_s / limit_img_s, 3),
                          pipeline_over_baseline=round(pipeline_img_s / base_img_s, 3))
        if args.huge:
            h = huge_rss(ckpt, args.size, tmp)
            print(f"50 MP gray image: {h['ok']} ok in {h['seconds']:.1f} s, peak RSS {h['peak_rss_mb']:.0f} MB "
                  "(target < 2048)", flush=True)
            result["huge_50mp_peak_rss_mb"] = round(h["peak_rss_mb"], 1)
            result["huge_50mp_seconds"] = h["seconds"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
