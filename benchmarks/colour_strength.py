"""Can a model's colour strength be chosen per image? (issue 10: the colourfulness gap)

The shipped model's hues are mostly right but pale, and a global chroma scale cannot
close the colourfulness gap: the truth's colourfulness varies from photo to photo far
more than the prediction's. This script measures, on a model and the corpus:

1. **the oracle**: each photo's chroma scaled until its colourfulness equals the truth's
   (needs the truth: an upper bound, not a method);
2. **a vividness regressor**: ridge regression from what the model sees at inference
   (the frozen encoder's pooled features, mean and spread of each stage, plus statistics
   of L* and of the predicted a*b*) to the log colourfulness of the truth, fitted on the
   corpus's train split; each photo's chroma is then scaled towards the predicted
   colourfulness (``scale = (predicted / predicted-at-chroma-1) ** w``).

3. **how good a vividness predictor must be**: a simulated predictor whose log
   colourfulness correlates ``r`` with the truth's (the best linear estimate from such a
   signal: the set's mean plus ``r`` times each photo's standard score, averaged over
   noise draws). It tells how far a real predictor (ridge: ``r`` about 0.3-0.5) is from
   what the target needs.

Each is reported beside global chroma scales, on the corpus's validation scenes and on
an evaluation folder (PSNR gain over gray, photos that beat gray, colourfulness gap).
Scales between the measured grid points are interpolated.

    python benchmarks/colour_strength.py ../shared/data/photos-dev [--model M] [--corpus data/corpus]

About 20 minutes on 2 CPU cores (the train split's 808 images dominate); ``--no-regressor``
skips the train split and the regressor (a few minutes).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

GRID = (0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)
EXTS = {".jpg", ".jpeg", ".png"}


def prediction_stats(L_small: np.ndarray, ab_small: np.ndarray) -> tuple[list[float], float]:
    """Statistics of L* (h, w) and a*b* (2, h, w) at network size, and the colourfulness of
    that small prediction (the base a scale is relative to)."""
    from colorbatch.metrics import colorfulness, lab_to_rgb, to_uint8

    a, b = ab_small
    C = np.hypot(a, b)
    Ln = L_small / 100.0
    texture = np.abs(np.diff(Ln, axis=1)).mean() + np.abs(np.diff(Ln, axis=0)).mean()
    sector = ((np.arctan2(b, a) + np.pi) / (2 * np.pi) * 6).astype(int) % 6
    hue_mass = np.bincount(sector.ravel(), weights=C.ravel(), minlength=6) / max(float(C.sum()), 1e-6)
    c1 = colorfulness(to_uint8(lab_to_rgb(L_small, np.stack([a, b], -1))))
    stats = [Ln.mean(), Ln.std(), np.percentile(Ln, 5), np.percentile(Ln, 95), texture,
             C.mean() / 100, np.median(C) / 100, np.percentile(C, 90) / 100, C.std() / 100,
             a.mean() / 100, b.mean() / 100, *hue_mass, np.log(c1 + 1.0)]
    return [float(x) for x in stats], float(c1)


def measure(col, files: list[Path], grid: bool) -> list[dict]:
    """Per image: features, truth colourfulness, and (``grid``) PSNR/colourfulness at each scale."""
    from colorbatch.colorizer import net_shape
    from colorbatch.images import read_image
    from colorbatch.metrics import colorfulness, rgb_to_lab, to_uint8
    from colorbatch.prepare import as_numpy
    from colorbatch.training.calibrate import gray_psnr, image_scores

    rows, t0 = [], time.monotonic()
    for k, path in enumerate(files, 1):
        dec = read_image(path)
        if not dec.is_color:
            continue
        rgb = np.asarray(dec.pixels, dtype=np.float32)[..., :3]
        L = rgb_to_lab(rgb)[..., 0]
        small = col.resize(L, net_shape(*L.shape, col.size))
        encoded = col.encode(small)
        pooled = []
        for f in encoded[0]:
            f = f[0].float()
            pooled += f.mean((1, 2)).tolist() + f.std((1, 2)).tolist()
        pred = as_numpy(col.decode(encoded, small)) * 128.0  # = predict_small, without a second encoder pass
        stats, c1 = prediction_stats(as_numpy(small)[0] * 100.0, pred)
        row = {"name": path.name, "x": pooled + stats, "c1": c1, "truth": colorfulness(to_uint8(rgb))}
        if grid:
            ab = col.predict_ab([L])[0]
            row["gray"] = gray_psnr(rgb, L)
            row["grid"] = [(s["psnr"], s["colorfulness"]) for s in (image_scores(rgb, L, ab * g) for g in GRID)]
        rows.append(row)
        if k % 100 == 0 or k == len(files):
            el = time.monotonic() - t0
            print(f"  {k}/{len(files)} images, {el:.0f} s, ETA {el / k * (len(files) - k):.0f} s", file=sys.stderr)
    return rows


def ridge(X: np.ndarray, y: np.ndarray, lam: float):
    mu, sd = X.mean(0), X.std(0) + 1e-8
    Z = (X - mu) / sd
    w = np.linalg.solve(Z.T @ Z + lam * np.eye(Z.shape[1]), Z.T @ (y - y.mean()))
    return lambda X2: ((X2 - mu) / sd) @ w + y.mean()


def score(rows: list[dict], scales) -> dict:
    """Mean PSNR gain over gray, photos beating gray, mean |colourfulness gap| at per-image scales."""
    psnr, colf = [], []
    for r, s in zip(rows, scales):
        p, c = zip(*r["grid"])
        psnr.append(np.interp(s, GRID, p))
        colf.append(np.interp(s, GRID, c))
    psnr, colf = np.array(psnr), np.array(colf)
    gray = np.array([r["gray"] for r in rows])
    truth = np.array([r["truth"] for r in rows])
    gain = psnr - gray
    return {"gain": gain.mean(), "median": float(np.median(gain)), "beat": int((gain > 0).sum()), "n": len(rows),
            "colf": colf.mean(), "truth": truth.mean(), "gap": np.abs(colf - truth).mean()}


def simulated(rows: list[dict], r: float, draws: int = 200, seed: int = 0) -> dict:
    """:func:`score` for a vividness predictor whose log colourfulness correlates ``r`` with
    the truth's: each photo is scaled to exp(mean + r * standard score) of a noisy signal,
    the best linear estimate such a signal gives (``r`` 1 is the oracle). Means over draws."""
    rng = np.random.default_rng(seed)
    logt = np.log(np.array([r_["truth"] for r_ in rows]))
    z = (logt - logt.mean()) / max(float(logt.std()), 1e-8)
    curves = [[c for _, c in r_["grid"]] for r_ in rows]  # colourfulness at each GRID scale
    runs = []
    for _ in range(draws if 0.0 < r < 1.0 else 1):
        sig = r * z + np.sqrt(max(0.0, 1.0 - r * r)) * rng.standard_normal(len(rows))
        sig = (sig - sig.mean()) / max(float(sig.std()), 1e-8)
        want = np.exp(logt.mean() + logt.std() * r * sig)
        scales = [float(np.interp(w, c, GRID)) for w, c in zip(want, curves)]  # capped at the grid's ends
        runs.append(score(rows, scales))
    out = {k: (float(np.mean([s[k] for s in runs])) if k != "n" else runs[0][k]) for k in runs[0]}
    out["beat"] = round(out["beat"], 1)
    return out


def fmt(label: str, s: dict) -> str:
    return (f"| {label} | {s['gain']:+.2f} / {s['median']:+.2f} | {s['beat']:g}/{s['n']} | "
            f"{s['colf']:.1f} vs {s['truth']:.1f} | {s['gap']:.1f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", type=Path, help="Evaluation folder (never trained on).")
    ap.add_argument("--model", default=None, help="Checkpoint (default: the one colorize would use).")
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="Built corpus (train.txt, val.txt).")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--no-regressor", action="store_true",
                    help="Skip the train split and the regressor (global, oracle and simulated rows only).")
    args = ap.parse_args(argv)

    import torch

    from colorbatch.colorizer import Colorizer
    from colorbatch.sources import read_list_file

    torch.set_num_threads(1)
    col = Colorizer(args.model, "cpu", args.size, 1, chroma=1.0)  # the calibrated temperature, chroma 1
    print(f"model {col.model_id}: temperature {col.temperature}", file=sys.stderr)
    sets = {}
    for name, files, grid in (("eval", sorted(p for p in args.photos.iterdir() if p.suffix.lower() in EXTS), True),
                              ("val", read_list_file(args.corpus / "val.txt"), True),
                              ("train", read_list_file(args.corpus / "train.txt"), False)):
        if name == "train" and args.no_regressor:
            continue
        print(f"{name}: {len(files)} images", file=sys.stderr)
        sets[name] = measure(col, files, grid)

    X = {k: np.array([r["x"] for r in v]) for k, v in sets.items()}
    y = {k: np.log(np.array([r["truth"] for r in v]) + 1.0) for k, v in sets.items()}
    c1 = {k: np.array([r["c1"] for r in v]) for k, v in sets.items()}
    print("\n| colour strength | gain mean / median | beat gray | colourfulness vs truth | mean abs gap |")
    print("|---|---|---|---|---|")
    for where in ("val", "eval"):
        rows = sets[where]
        for g in (1.0, 1.1, 1.25, 1.5, 1.75):
            print(fmt(f"{where}: global chroma {g}", score(rows, [g] * len(rows))))
        oracle = []
        for r in rows:  # the scale at which the colourfulness equals the truth's (from the grid)
            _, c = zip(*r["grid"])
            oracle.append(float(np.interp(r["truth"], c, GRID)) if r["truth"] <= c[-1] else GRID[-1])
        print(fmt(f"{where}: oracle (scaled to the truth's colourfulness)", score(rows, oracle)))
        for r in (0.0, 0.35, 0.5, 0.7, 0.9, 1.0):
            print(fmt(f"{where}: simulated predictor, correlation {r:g}", simulated(rows, r)))
        if args.no_regressor:
            continue
        for lam in (300.0, 3000.0):
            f = ridge(X["train"], y["train"], lam)
            corr = np.corrcoef(f(X[where]), y[where])[0, 1]
            for w in (0.5, 0.75, 1.0):
                scales = np.clip((np.exp(f(X[where])) / c1[where]) ** w, 0.3, 3.0)
                print(fmt(f"{where}: regressor (ridge {lam:g}, corr {corr:.2f}), w {w}", score(rows, scales)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
