"""Colour quality of checkpoints on a folder of colour photos, beside the gray baseline.

Each photo is turned gray, colorized at ``--size`` (as ``colorbatch colorize`` does,
with the colour strength each model is calibrated to, or ``--chroma``) and compared
with the original. Prints, per model: mean and median PSNR against gray's, the
spread of the per-image gain, how many photos beat gray, colourfulness against the
truth's (and the mean absolute gap), and the mean a*/b* against the truth's (a
colour cast shows there). ``--sweep`` also tries a grid of temperatures and chroma
scales; ``--grid`` writes a before/after picture grid (PNG).

    python benchmarks/quality.py PHOTOS_DIR [--model A.safetensors --model B.safetensors]
        [--size 512] [--flip] [--sweep] [--grid docs/images/grid.png] [--json out.json]

Without ``--model`` the model ``colorbatch colorize`` would pick is measured.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

EXTS = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}


def load_photos(folder: Path) -> list[tuple[str, np.ndarray]]:
    from colorbatch.images import read_image

    out = []
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in EXTS:
            dec = read_image(p)
            if dec.is_color:
                out.append((p.name, np.asarray(dec.pixels, dtype=np.float32)))
    return out


def measure(model_path, photos, size: int, chroma="auto", flip: bool = False) -> tuple[list[dict], list[np.ndarray]]:
    from colorbatch.colorizer import Colorizer
    from colorbatch.metrics import rgb_to_lab
    from colorbatch.training.calibrate import gray_psnr, image_scores

    col = Colorizer(model_path, "cpu", size, 1, chroma=chroma)
    rows, outs = [], []
    for name, rgb in photos:
        L = rgb_to_lab(rgb)[..., 0]
        ab = col.predict_ab([L])[0]
        if flip:  # test-time augmentation: average with the prediction on the mirrored image
            ab = 0.5 * (ab + col.predict_ab([np.ascontiguousarray(L[:, ::-1])])[0][:, ::-1])
        row = image_scores(rgb, L, ab)
        row["gray_psnr"] = gray_psnr(rgb, L)
        row["name"] = name
        rows.append(row)
        outs.append(col.compose(L, ab))
    return rows, outs


def fmt_summary(label: str, s: dict) -> str:
    return (
        f"| {label} | {s['psnr_mean']:.2f} / {s['psnr_median']:.2f} | {s['gray_psnr_mean']:.2f} / "
        f"{s['gray_psnr_median']:.2f} | {s['gain_mean']:+.2f} / {s['gain_median']:+.2f} "
        f"({s['gain_p10']:+.2f} .. {s['gain_p90']:+.2f}) | {s['beat_gray']}/{s['n']} | "
        f"{s['colorfulness_mean']:.1f} vs {s['colorfulness_gt_mean']:.1f} | {s['colorfulness_absgap_mean']:.1f} | "
        f"{s['a_mean']:+.1f} / {s['b_mean']:+.1f} vs {s['a_gt_mean']:+.1f} / {s['b_gt_mean']:+.1f} |"
    )


HEADER = (
    "| model | PSNR mean / median | gray mean / median | gain mean / median (p10 .. p90) | beat gray | "
    "colourfulness vs truth | mean abs gap | mean a* / b* vs truth |\n|---|---|---|---|---|---|---|---|"
)


def picture_grid(photos, columns: list[tuple[str, list[np.ndarray]]], out: Path, thumb: int = 256,
                 rows_max: int = 12) -> None:
    """Rows: photos; columns: gray input, each model's output, the original."""
    import torch
    from PIL import Image, ImageDraw

    from colorbatch.color import L_to_gray
    from colorbatch.metrics import rgb_to_lab

    chosen = list(range(len(photos)))[:rows_max]
    cols = [("gray input", None)] + columns + [("original", None)]
    h = int(thumb * 0.72)
    sheet = Image.new("RGB", (thumb * len(cols), 18 + h * len(chosen)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (label, _) in enumerate(cols):
        draw.text((c * thumb + 4, 3), label, fill="black")
    for r, i in enumerate(chosen):
        name, rgb = photos[i]
        g = L_to_gray(torch.from_numpy(rgb_to_lab(rgb)[..., 0])).numpy()  # the gray input the model saw
        gray = np.repeat((np.clip(g, 0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
        tiles = [gray] + [outs[i] for _, outs in columns] + [(np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)]
        for c, tile in enumerate(tiles):
            im = Image.fromarray(tile)
            im.thumbnail((thumb - 4, h - 4))
            sheet.paste(im, (c * thumb + 2, 18 + r * h + 2))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", type=Path)
    ap.add_argument("--model", action="append", default=[], help="Checkpoint (repeat to compare); default: discovered.")
    ap.add_argument("--label", action="append", default=[], help="Label per --model.")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--chroma", default="auto")
    ap.add_argument("--flip", action="store_true", help="Also measure flip test-time averaging.")
    ap.add_argument("--sweep", action="store_true", help="Also try a grid of temperatures x chroma scales.")
    ap.add_argument("--grid", type=Path, help="Write a before/after picture grid (PNG) here.")
    ap.add_argument("--json", type=Path, help="Write per-image rows and summaries here.")
    ap.add_argument("--per-image", action="store_true", help="Print each photo's figures.")
    a = ap.parse_args(argv)

    import torch

    from colorbatch.models.checkpoint import discover_model, load_checkpoint
    from colorbatch.training.calibrate import choose, grid_scores, summary

    torch.set_num_threads(max(1, torch.get_num_threads()))
    photos = load_photos(a.photos)
    if not photos:
        print(f"no colour photos in {a.photos}", file=sys.stderr)
        return 2
    models = a.model or [str(discover_model(None))]
    labels = a.label + [Path(m).stem for m in models[len(a.label):]]
    report, columns = {}, []
    print(f"{len(photos)} photos from {a.photos}, network size {a.size}, chroma {a.chroma}\n")
    print(HEADER)
    for label, m in zip(labels, models):
        rows, outs = measure(m, photos, a.size, a.chroma)
        s = summary(rows)
        report[label] = {"model": m, "summary": s, "images": rows}
        columns.append((label, outs))
        print(fmt_summary(label, s), flush=True)
        if a.flip:
            frows, _ = measure(m, photos, a.size, a.chroma, flip=True)
            report[label]["flip"] = summary(frows)
            print(fmt_summary(label + " + flip TTA", summary(frows)), flush=True)
        if a.per_image:
            for r in rows:
                print(f"    {r['name']:32s} {r['psnr']:6.2f} (gray {r['gray_psnr']:6.2f}, {r['psnr'] - r['gray_psnr']:+.2f})"
                      f"  colourfulness {r['colorfulness']:5.1f} vs {r['colorfulness_gt']:5.1f}")
    if a.sweep:
        for label, m in zip(labels, models):
            model, _ = load_checkpoint(m)
            grid = grid_scores(model, [rgb for _, rgb in photos], a.size, (1.0, 0.8, 0.65, 0.5, 0.38),
                               (0.8, 1.0, 1.2, 1.4, 1.6))
            key, sums = choose(grid)
            print(f"\nsweep of {label} (temperature, chroma); rule's choice on THESE photos: {key}")
            print(HEADER)
            for k in sorted(sums):
                print(fmt_summary(f"T {k[0]:g} x {k[1]:g}", sums[k]))
            report[label]["sweep"] = {f"{k[0]:g}x{k[1]:g}": v for k, v in sums.items()}
    if a.grid:
        picture_grid(photos, columns, a.grid)
        print(f"\npicture grid: {a.grid}")
    if a.json:
        a.json.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
