"""IO figures: listing speed, decode speed (full and draft), grayscale+save throughput.

    python benchmarks/io.py [--files 20000] [--size 1024]

Prints figures; asserts nothing. Everything is generated in a temporary folder.
"""
from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=20000, help="empty files for the listing test")
    ap.add_argument("--ilsvrc", type=int, default=100000, help="entries in a synthetic ILSVRC list file")
    ap.add_argument("--size", type=int, default=1024, help="long side of the decode test images")
    ap.add_argument("--images", type=int, default=16, help="images for the decode and save tests")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from PIL import Image

    from colorbatch.images import L_to_gray, read_image, write_image
    from colorbatch.item import Item
    from colorbatch.images import decode_item
    from colorbatch.sources import enumerate_files, enumerate_ilsvrc

    class Opt:
        extensions = [".jpg", ".png"]
        recursive = True
        split = None

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # listing
        tree = tmp / "tree"
        for i in range(args.files):
            d = tree / f"d{i % 100:02d}"
            if i < 100:
                d.mkdir(parents=True)
            (d / f"f{i:06d}.jpg").touch()
        t = time.perf_counter()
        items = enumerate_files(tree, Opt, None)
        dt = time.perf_counter() - t
        print(f"list folder: {len(items)} files in {dt:.3f} s ({len(items) / dt:,.0f} files/s)")

        root = tmp / "ILSVRC" / "ImageSets" / "DET"
        root.mkdir(parents=True)
        (tmp / "ILSVRC" / "Data" / "DET" / "train").mkdir(parents=True)
        (root / "train.txt").write_text(
            "".join(f"ILSVRC2013_train/n{i % 200:08d}/n{i % 200:08d}_{i} {i + 1}\n" for i in range(args.ilsvrc))
        )
        t = time.perf_counter()
        items = enumerate_ilsvrc(tmp, Opt, None)
        dt = time.perf_counter() - t
        print(f"ILSVRC list: {len(items)} entries listed in {dt:.3f} s ({len(items) / dt:,.0f} entries/s)")
        t = time.perf_counter()
        n = sum(1 for _ in items)
        dt = time.perf_counter() - t
        print(f"ILSVRC items: {n} made while iterating in {dt:.3f} s ({n / dt:,.0f} items/s)")

        # decode
        rng = np.random.default_rng(0)
        h, w = args.size * 3 // 4, args.size
        y, x = np.mgrid[0:h, 0:w]
        base = ((np.sin(x / 37.0) + np.cos(y / 23.0)) * 60 + 128).astype(np.uint8)
        paths = []
        for i in range(args.images):
            arr = np.clip(base.astype(int) + rng.integers(-10, 10, base.shape), 0, 255).astype(np.uint8)
            p = tmp / "img" / f"{i:03d}.jpg"
            p.parent.mkdir(exist_ok=True)
            Image.fromarray(np.stack([arr, arr // 2 + 60, 255 - arr], 2)).save(p, quality=90)
            paths.append(p)
        for label, kw in (("full decode", {}), ("draft 256", {"draft": (256, 192)})):
            t = time.perf_counter()
            for p in paths:
                read_image(p, **kw)
            dt = time.perf_counter() - t
            print(f"{label}: {args.images} JPEG {w}x{h} in {dt:.3f} s ({args.images / dt:.1f} img/s)")

        # decode + L* + gray + atomic PNG write
        t = time.perf_counter()
        for p in paths:
            item = Item(id=p.name, path=p)
            decode_item(item)
            write_image(tmp / "out" / (p.stem + ".png"), L_to_gray(item.L))
        dt = time.perf_counter() - t
        print(f"grayscale+save (png): {args.images / dt:.1f} img/s at {w}x{h}, 1 torch thread")


if __name__ == "__main__":
    main()
