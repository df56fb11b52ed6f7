"""Colour hints: how much do N point hints (or a reference) help, on a folder of colour photos?

For each photo and each hint setting, a simulated user gives N point hints taken from
the truth (fixed seed: places uniformly at random, each hint's colour the mean sRGB of a
small disc of the original, radius 1% of the long side), as a hint file would; the
photo is colorized with them at ``--size`` and scored against the original. Printed per
setting: PSNR mean / median with the gain over the automatic result (p10..p90), how many
photos beat gray, colourfulness against the truth's (mean |gap|), and the hint accuracy:
the mean |a*b* of the output averaged over each hint's disc - the hint's a*b*|.
``self`` uses the truth's own global hint (the oracle a reference photo approximates).

    python benchmarks/hints.py PHOTOS_DIR [--model M.safetensors] [--size 512] [--points 0 3 10] [--reference-self]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import load_photos  # noqa: E402


def hint_error(ab: np.ndarray, points) -> list[float]:
    """|mean a*b* of the output over each hint's disc - the hint's a*b*| per hint."""
    from colorbatch.models.hints import srgb_to_ab128

    H, W = ab.shape[:2]
    want = srgb_to_ab128([p[3] for p in points])
    errs = []
    for (x, y, r, _), (a, b) in zip(points, want):
        yy, xx = np.ogrid[:H, :W]
        disc = (yy - y) ** 2 + (xx - x) ** 2 <= r * r
        got = ab[disc].mean(axis=0)
        errs.append(float(np.hypot(got[0] - a * 128.0, got[1] - b * 128.0)))
    return errs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", type=Path)
    ap.add_argument("--model", help="Checkpoint (default: the one colorize would use).")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--points", type=int, nargs="+", default=[0, 3, 10])
    ap.add_argument("--reference-self", action="store_true", help="Also the truth's own global hint (oracle).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, help="Only the first N photos (a quick look).")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)

    from colorbatch.colorizer import Colorizer
    from colorbatch.metrics import rgb_to_lab
    from colorbatch.models.hints import for_image, reference_colourfulness, reference_hint, simulate_user_points
    from colorbatch.training.calibrate import gray_psnr, image_scores

    photos = load_photos(a.photos)[: a.limit]
    if not photos:
        print(f"no colour photos in {a.photos}", file=sys.stderr)
        return 2
    col = Colorizer(a.model, "cpu", a.size, 1)
    if not col.accepts_hints:
        print(f"{col.model_id} takes no hints", file=sys.stderr)
        return 2
    settings = [(f"{n} points", n, False) for n in a.points]
    if a.reference_self:
        settings.append(("reference self", 0, True))
    rows = {s[0]: [] for s in settings}
    print(f"{len(photos)} photos from {a.photos}, model {col.model_id}, size {a.size}", flush=True)
    for i, (name, rgb) in enumerate(photos):
        L = rgb_to_lab(rgb)[..., 0]
        gray = gray_psnr(rgb, L)
        for label, n, ref in settings:
            pts = simulate_user_points(rgb, n, a.seed * 1000 + i)
            hints = for_image(pts, L.shape, col.net_hw(L.shape), reference_hint(rgb) if ref else None,
                              reference_colourfulness(rgb) if ref else None)
            ab = col.predict_ab([L], hints=[hints])[0]
            row = image_scores(rgb, L, ab)
            row.update(name=name, gray_psnr=gray, hint_err=hint_error(ab, pts))
            rows[label].append(row)
    base = {r["name"]: r["psnr"] for r in rows[settings[0][0]]}
    print("| hints | PSNR mean / median | gain over automatic mean / median (p10 .. p90) | beat gray | "
          "colourfulness vs truth (mean abs gap) | hint a*b* error mean |\n|---|---|---|---|---|---|")
    report = {}
    for label, _, _ in settings:
        rs = rows[label]
        p = np.array([r["psnr"] for r in rs])
        g = p - np.array([base[r["name"]] for r in rs])
        cf = np.array([r["colorfulness"] for r in rs])
        cg = np.array([r["colorfulness_gt"] for r in rs])
        he = [e for r in rs for e in r["hint_err"]]
        beat = int(sum(r["psnr"] > r["gray_psnr"] for r in rs))
        s = {"psnr_mean": p.mean(), "psnr_median": float(np.median(p)), "gain_mean": g.mean(),
             "gain_median": float(np.median(g)), "gain_p10": float(np.percentile(g, 10)),
             "gain_p90": float(np.percentile(g, 90)), "beat_gray": beat, "n": len(rs),
             "colorfulness_mean": cf.mean(), "colorfulness_gt_mean": cg.mean(),
             "colorfulness_absgap_mean": float(np.abs(cf - cg).mean()),
             "hint_err_mean": float(np.mean(he)) if he else None}
        report[label] = s
        he_s = f"{s['hint_err_mean']:.1f}" if he else "-"
        print(f"| {label} | {s['psnr_mean']:.2f} / {s['psnr_median']:.2f} | {s['gain_mean']:+.2f} / "
              f"{s['gain_median']:+.2f} ({s['gain_p10']:+.2f} .. {s['gain_p90']:+.2f}) | {beat}/{len(rs)} | "
              f"{s['colorfulness_mean']:.1f} vs {s['colorfulness_gt_mean']:.1f} ({s['colorfulness_absgap_mean']:.1f}) | "
              f"{he_s} |", flush=True)
    if a.json:
        a.json.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
