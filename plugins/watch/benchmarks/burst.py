"""Benchmark: a burst of files dropped into a watched folder.

Starts ``colorbatch watch`` in a subprocess with a tiny untrained model (the
plumbing is measured, not the colours), drops N gray images into the folder
as fast as it can, and reports how long the watcher took to drain them, its
rate, and its resident memory (start, at each quarter, peak, end) so one can
see memory stays flat. Checks that every file got exactly one output.

    python plugins/watch/benchmarks/burst.py --files 1000
    python plugins/watch/benchmarks/burst.py --files 1000 --image-size 256 --net-size 256 --model my.safetensors
"""
from __future__ import annotations

import argparse
import collections
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def make_image(seed: int, size: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    arr = ((x + y) * 255 // (2 * size) + rng.integers(0, 40, (size, size))).clip(0, 255).astype("uint8")
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, "PNG")
    return buf.getvalue()


def manifest_ids(out: Path) -> collections.Counter:
    ids: collections.Counter = collections.Counter()
    path = out / ".colorbatch-manifest.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                ids[json.loads(line)["id"]] += 1
            except (ValueError, KeyError):
                pass
    return ids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--image-size", type=int, default=64, help="side of the square test images (px)")
    ap.add_argument("--net-size", type=int, default=64, help="colorize --size")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--model", default=None, help="a checkpoint (default: a tiny untrained one)")
    ap.add_argument("--poll", action="store_true", help="use the polling observer")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in the watcher (OMP_NUM_THREADS)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="colorbatch-watch-bench-"))
    root, out = work / "in", work / "out"
    root.mkdir()
    model = args.model
    if model is None:
        import torch

        from colorbatch.models import build_model
        from colorbatch.models.checkpoint import save_checkpoint

        torch.manual_seed(0)
        model = str(save_checkpoint(work / "tiny.safetensors",
                                    build_model(encoder="efficientnet-lite0", encoder_weights="none")))
    images = [make_image(i, args.image_size) for i in range(min(args.files, 50))]

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "colorbatch", "watch", str(root), "--out", str(out), "--model", model,
           "--settle", "0.5", "--size", str(args.net_size), "--batch-size", str(args.batch_size), "--device", "cpu"]
    if args.poll:
        cmd.append("--poll")
    log = open(work / "watch.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    wlog = out / ".colorbatch-watch.jsonl"
    t0 = time.monotonic()
    while not (wlog.exists() and '"started"' in wlog.read_text()):
        if proc.poll() is not None:
            print((work / "watch.log").read_text())
            return 1
        time.sleep(0.1)
    start_rss = rss_mib(proc.pid)
    print(f"watcher ready in {time.monotonic() - t0:.1f} s, RSS {start_rss:.0f} MiB")

    t_burst = time.monotonic()
    for i in range(args.files):
        (root / f"b{i // 100:02d}" if i >= 100 else root).mkdir(exist_ok=True)
        sub = root / f"b{i // 100:02d}" if i >= 100 else root
        (sub / f"img{i:05d}.png").write_bytes(images[i % len(images)])
    t_written = time.monotonic()
    print(f"wrote {args.files} files in {t_written - t_burst:.2f} s")

    samples = []
    quarters = {}
    peak = start_rss
    first_done = None
    while True:
        n = sum(manifest_ids(out).values())
        r = rss_mib(proc.pid)
        peak = max(peak, r)
        now = time.monotonic()
        samples.append((now - t_burst, n, r))
        if n and first_done is None:
            first_done = now
        for q in (25, 50, 75):
            if q not in quarters and n >= args.files * q / 100:
                quarters[q] = r
        if n >= args.files or proc.poll() is not None or now - t_burst > 3600:
            break
        time.sleep(0.25)
    t_done = time.monotonic()
    end_rss = rss_mib(proc.pid)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(120)
    ids = manifest_ids(out)
    drain = t_done - t_burst
    print(f"drained {len(ids)} files in {drain:.1f} s after the burst began: "
          f"{len(ids) / drain:.1f} files/s overall, "
          f"{(len(ids) - 1) / max(t_done - (first_done or t_done), 1e-6):.1f} files/s from the first output")
    print(f"latency to the first output: {(first_done or t_done) - t_burst:.2f} s (settle 0.5 s)")
    print("RSS MiB: start {:.0f}, 25% {:.0f}, 50% {:.0f}, 75% {:.0f}, end {:.0f}, peak {:.0f}".format(
        start_rss, quarters.get(25, float("nan")), quarters.get(50, float("nan")),
        quarters.get(75, float("nan")), end_rss, peak))
    twice = [k for k, v in ids.items() if v != 1]
    print(f"exit code after SIGTERM: {code}; outputs: {len(ids)}/{args.files}, processed twice: {len(twice)}")
    print(f"work folder: {work}")
    return 0 if len(ids) == args.files and not twice and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
