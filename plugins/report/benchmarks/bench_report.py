"""How long the report takes on a large run. Prints figures; asserts nothing.

    python plugins/report/benchmarks/bench_report.py [--items 10000] [--images 300]

Builds a synthetic run folder (N metric rows, M saved images, 30 epochs,
50 failures), then times ``colorbatch report`` (the library call) cold (all
thumbnails made from the image files) and warm (thumbnails reused), and the
``report`` step's per-item work (reservoir sample + best/worst thumbnails from
arrays) over N items.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=10000)
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--size", type=int, default=256, help="side of the synthetic images")
    ap.add_argument("--keep", action="store_true", help="keep the run folder and print its path")
    a = ap.parse_args()

    from colorbatch_report.build import build_from_folder
    from colorbatch_report.fixtures import make_run_folder

    root = Path(tempfile.mkdtemp(prefix="report-bench-"))
    t0 = time.perf_counter()
    make_run_folder(root / "run", items=a.items, images=a.images, epochs=30, failures=50, size=a.size)
    print(f"synthetic run folder: {a.items} metric rows, {a.images} images of ~{a.size} px "
          f"({time.perf_counter() - t0:.1f} s to write)")

    t0 = time.perf_counter()
    html = build_from_folder(root / "run")
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    build_from_folder(root / "run")
    warm = time.perf_counter() - t0
    thumbs = list((html.parent / "thumbs").glob("*.jpg"))
    tsize = sum(p.stat().st_size for p in thumbs)
    print(f"report build, cold (thumbnails from files): {cold:.2f} s")
    print(f"report build, warm (thumbnails reused):     {warm:.2f} s")
    print(f"index.html {html.stat().st_size / 1e6:.2f} MB; {len(thumbs)} thumbnails, "
          f"{tsize / 1e6:.2f} MB ({tsize / max(len(thumbs), 1) / 1e3:.1f} kB each)")

    # the step's per-item cost: sample + best/worst thumbnails from arrays
    import numpy as np

    from colorbatch.item import Item
    from colorbatch_report.step import Options, ReportStep

    class Ctx:  # the parts of RunContext the stream side uses
        is_main = True

        def warn(self, msg):
            print("warning:", msg)

    step = ReportStep(Options(out=str(root / "step-report")), Ctx())
    rng = np.random.default_rng(0)
    rgb = rng.random((a.size, a.size, 3), dtype=np.float32)
    out8 = (rgb * 255).astype(np.uint8)
    L = rgb.mean(axis=2) * 100
    items = [Item(id=f"img_{i:05d}.png", rgb=rgb, L=L, output=out8,
                  metrics={"psnr": float(rng.normal(25, 3)), "gray_psnr": 24.0}) for i in range(a.items)]
    t0 = time.perf_counter()
    for _ in step.run(iter(items)):
        pass
    kept = len(step.thumbs.pending)
    step.thumbs.flush()
    dt = time.perf_counter() - t0
    print(f"report step over {a.items} items of {a.size} px: {dt:.2f} s "
          f"({dt / a.items * 1e3:.2f} ms/item; {kept} items with thumbnails kept)")
    if a.keep:
        print(f"kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
