"""Start-up and single-image cost of ``colorbatch colorize`` (issue 13, deliverable 3).

    python benchmarks/startup.py [IMAGE] [--model M] [--megapixels 2] [--runs 5] [--compare]

(a) command to first output: ``colorbatch colorize IMAGE --out OUT`` in a fresh process,
    from the launch to the output file's modification time (the save step writes it
    atomically), and to the process' exit; the median of --runs runs. The model is the
    one colorize would pick (the shipped default unless --model): "model cached, warm
    disk" as the issue's target says (the first run warms the disk and numba's cache and
    is not counted).
(b) the single-image cost in a warm process: decode to L*, the network, recombination and
    writing the JPEG for one image, the median of --runs, with the model loaded.
(c) where the start-up goes: importing torch, importing numba and loading the compiled
    kernels, loading the model (each in a fresh process, medians).

``--compare`` also runs (a) on the torch runtime (``COLORBATCH_RUNTIME=torch``), with and
without the kernels (``COLORBATCH_KERNELS=0``: the torch reference path), in turns with the
default runtime. (b) is measured for the default runtime (onnxruntime on a CPU) and for torch. IMAGE defaults to a generated photo-like picture; with
``--megapixels M`` the image is resized to about M megapixels first. The last line is
one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _prepare(image: Path | None, megapixels: float, dest: Path) -> Path:
    from PIL import Image

    if image is None:
        from colorbatch.testing import save_tiny_image

        image = save_tiny_image(dest / "gen.png", size=(640, 480), mode="RGB", seed=1)
    with Image.open(image) as im:
        im = im.convert("RGB")
        if megapixels:
            s = (megapixels * 1e6 / (im.width * im.height)) ** 0.5
            im = im.resize((round(im.width * s), round(im.height * s)), Image.LANCZOS)
        out = dest / "one.jpg"
        im.save(out, quality=92)
    return out


def command_times(img: Path, model: str | None, tmp: Path, runs: int, configs: dict) -> dict:
    """{config name: (median seconds to the first output, to exit)} of fresh `colorbatch colorize`
    runs; ``configs`` maps a name to extra environment variables. The configurations take turns
    (one run of each per round), so a busy stretch of a shared machine hits them alike."""
    first: dict = {k: [] for k in configs}
    total: dict = {k: [] for k in configs}
    for r in range(runs + 1):  # round 0 warms the disk, numba's cache and the onnxruntime export
        for n, (name, extra) in enumerate(configs.items()):
            env = {**os.environ, **extra}
            out = tmp / f"out-{n}-{r}"
            cmd = [sys.executable, "-m", "colorbatch", "colorize", str(img), "--out", str(out),
                   "--run-dir", str(tmp / f"run-{n}-{r}")]
            if model:
                cmd += ["--model", model]
            t0 = time.time()
            p = subprocess.run(cmd, capture_output=True, text=True, env=env)
            t1 = time.time()
            if p.returncode != 0:
                raise SystemExit(f"colorize failed ({p.returncode}): {p.stderr[-2000:]}")
            written = [f for f in out.rglob("*") if f.is_file()]
            if r:
                first[name].append(min(f.stat().st_mtime for f in written) - t0)
                total[name].append(t1 - t0)
    return {k: (statistics.median(first[k]), statistics.median(total[k])) for k in configs}


_PARTS = {
    "import_torch_s": "import torch",
    "import_numba_and_load_kernels_s": "from colorbatch import kernels; kernels.warm_up()",
    "import_onnxruntime_s": "import onnxruntime",
}


def part_time(code: str, runs: int) -> float:
    """Median seconds of ``code`` in a fresh interpreter (its own clock, not the launch)."""
    times = []
    prog = f"import time; t0 = time.perf_counter(); {code}; print(time.perf_counter() - t0)"
    for _ in range(runs):
        p = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, check=True)
        times.append(float(p.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def single_image(img: Path, model: str | None, tmp: Path, runs: int, runtime: str = "auto") -> dict:
    """In this process: model load once, then the per-image cost (median of ``runs``)."""
    from colorbatch import kernels
    from colorbatch.colorizer import Colorizer, prepare_item, unpack_L
    from colorbatch.images import write_image
    from colorbatch.item import Item
    from colorbatch.models.checkpoint import discover_model

    t0 = time.perf_counter()
    col = Colorizer(discover_model(model), "cpu", runtime=runtime)
    load_s = time.perf_counter() - t0
    kernels.warm_up()
    numpy = col.runtime == "onnxruntime"
    times = []
    for r in range(runs + 1):
        t0 = time.perf_counter()
        prep = prepare_item(Item(id=img.name, path=img), col.size, compact=not numpy, want_rgb=False, numpy=numpy)
        pred = col.predict_small([prep["small"]])[0]
        rgb, _ = col.recombine(unpack_L(prep["Lq"]), pred)
        write_image(tmp / f"single-{r}.jpg", rgb)
        if r:  # run 0: first use in this process
            times.append(time.perf_counter() - t0)
    return {"model_load_s": load_s, "single_image_s": statistics.median(times), "model_id": col.model_id,
            "runtime": col.runtime}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("image", type=Path, nargs="?")
    ap.add_argument("--model", default=None, help="checkpoint (default: the one colorize picks)")
    ap.add_argument("--megapixels", type=float, default=2.0, help="resize the image to ~M MP (0: as it is)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--compare", action="store_true", help="also --runtime torch, with and without the kernels")
    args = ap.parse_args(argv)

    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="colorbatch-startup-") as name:
        tmp = Path(name)
        img = _prepare(args.image, args.megapixels, tmp)
        from PIL import Image

        with Image.open(img) as im:
            mp = im.width * im.height / 1e6
        print(f"one image of {mp:.2f} MP; median of {args.runs} runs", flush=True)
        configs = {"auto": {"COLORBATCH_NO_PLUGINS": "1"}}
        if args.compare:
            configs["torch"] = {"COLORBATCH_NO_PLUGINS": "1", "COLORBATCH_RUNTIME": "torch"}
            configs["torch, no kernels"] = {"COLORBATCH_NO_PLUGINS": "1", "COLORBATCH_RUNTIME": "torch",
                                            "COLORBATCH_KERNELS": "0"}
        times = command_times(img, args.model, tmp, args.runs, configs)
        first, total = times["auto"]
        print(f"(a) command to first output {first:.2f} s (target <= 2 s); to exit {total:.2f} s "
              "(the default runtime: onnxruntime on this CPU)", flush=True)
        result.update(first_output_s=round(first, 3), command_s=round(total, 3), megapixels=round(mp, 2))
        if args.compare:
            f0, t0 = times["torch"]
            f1, t1 = times["torch, no kernels"]
            print(f"    --runtime torch: first output {f0:.2f} s; to exit {t0:.2f} s", flush=True)
            print(f"    --runtime torch, without the kernels: first output {f1:.2f} s; to exit {t1:.2f} s", flush=True)
            result.update(first_output_torch_s=round(f0, 3), command_torch_s=round(t0, 3),
                          first_output_torch_no_kernels_s=round(f1, 3), command_torch_no_kernels_s=round(t1, 3))
        for runtime in ("auto", "torch"):
            one = single_image(img, args.model, tmp, args.runs, runtime)
            print(f"(b) one image in a warm process, {one['runtime']}: {one['single_image_s'] * 1000:.0f} ms "
                  f"(decode, network, recombination, JPEG); model {one['model_id']}, loaded in "
                  f"{one['model_load_s']:.2f} s", flush=True)
            key = "" if runtime == "auto" else "_torch"
            result[f"single_image{key}_s"] = round(one["single_image_s"], 4)
            result[f"model_load{key}_s"] = round(one["model_load_s"], 3)
        parts = {k: part_time(code, args.runs) for k, code in _PARTS.items()}
        print("(c) " + "; ".join(f"{k[:-2].replace('_', ' ')} {v:.2f} s" for k, v in parts.items()), flush=True)
        result.update({k: round(v, 3) for k, v in parts.items()})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
