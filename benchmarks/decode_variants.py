"""Does a different read-out of the classify head's distribution close the colourfulness gap?

The annealed mean (``softmax(logits / T)`` averaged over the bin centres) is pale where
the hue is uncertain: vectors of different hues cancel. This script tries a read-out
that keeps the expected chroma *magnitude*: the mean's hue, with its length divided by
``R ** alpha``, where ``R = |E[ab]| / E[|ab|]`` (the resultant length of the predicted
distribution, 1 when it is sure of the hue). ``alpha = 0`` is the annealed mean,
``alpha = 1`` gives every pixel the chroma the model expects there, and a negative
``alpha`` fades unsure pixels to gray (after Larsson et al.'s chromatic fading).

For each (temperature, alpha, chroma) it measures PSNR gain over gray, photos that beat
gray and the colourfulness gap, on the corpus's validation scenes and on an evaluation
folder. The calibration rule of :mod:`colorbatch.training.calibrate` (closest
colourfulness within 0.25 dB of the best PSNR) picks one setting per alpha on the
validation scenes, and those choices are shown on the evaluation folder; so are the
evaluation folder's best settings (chosen on it: for information, not for shipping).

    python benchmarks/decode_variants.py ../shared/data/photos-dev [--model M] [--corpus data/corpus]

About 20 minutes on 2 CPU cores (85 photos, at most 512 px on the long side, 189 read-outs each).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

TEMPERATURES = (1.0, 0.65, 0.38)
ALPHAS = (-1.0, -0.5, 0.0, 0.25, 0.5, 0.75, 1.0)
CHROMAS = (0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5, 1.75, 2.0)
EXTS = {".jpg", ".jpeg", ".png"}


def load_rgb(path: Path, longest: int = 512):
    """A colour photo as float RGB, the long side at most ``longest`` (None if gray)."""
    import torch
    import torch.nn.functional as F

    from colorbatch.images import read_image

    dec = read_image(path)
    if not dec.is_color:
        return None
    rgb = np.asarray(dec.pixels, dtype=np.float32)
    h, w = rgb.shape[:2]
    s = longest / max(h, w)
    if s < 1:
        t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None]
        t = F.interpolate(t, size=(max(1, round(h * s)), max(1, round(w * s))), mode="area")
        rgb = t[0].permute(1, 2, 0).clamp_(0, 1).numpy()
    return rgb


def read_outs(model, L: np.ndarray, size: int, temperature: float):
    """(mean a*b* (1,2,h,w) in /128 units, resultant length R (1,1,h,w)) at network size."""
    import torch

    from colorbatch.colorizer import net_shape, pad_batch, resize_L01
    from colorbatch.models.bins import centres

    small = resize_L01(L.astype(np.float32), net_shape(*L.shape, size))
    x = pad_batch([small], int(getattr(model, "multiple", 32)))
    c = centres()
    with torch.inference_mode():
        p = torch.softmax(model(x, logits=True).float() / temperature, dim=1)
        mean = torch.einsum("bqhw,cq->bchw", p, c)
        magnitude = torch.einsum("bqhw,q->bhw", p, c.norm(dim=0))[:, None]
        R = (mean.norm(dim=1, keepdim=True) / magnitude.clamp_min(1e-6)).clamp_(1e-3, 1.0)
    return mean, R, tuple(x.shape[-2:]), tuple(small.shape[-2:])


def read_ab(mean, R, padded, hw, shape, alpha: float, chroma: float) -> np.ndarray:
    """Full-resolution a*b* (H, W, 2) for one read-out."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        m = mean * R.pow(-alpha) if alpha else mean
        ab = F.interpolate(m, size=padded, mode="bilinear", align_corners=False)
        ab = (ab[..., :hw[0], :hw[1]] * chroma).clamp_(-1.0, 1.0) * 128.0
        ab = F.interpolate(ab, size=shape, mode="bilinear", align_corners=False)
    return ab[0].permute(1, 2, 0).numpy()


def measure(model, files, size: int) -> dict:
    """{(T, alpha, chroma): per-image rows} (the rows of :func:`calibrate.summary`)."""
    from colorbatch.metrics import colorfulness, lab_to_rgb, psnr, rgb_to_lab, to_uint8
    from colorbatch.training.calibrate import gray_psnr

    out: dict = {}
    for i, f in enumerate(files):
        rgb = load_rgb(Path(f))
        if rgb is None:
            continue
        lab = rgb_to_lab(rgb)
        L = lab[..., 0]
        true_u8 = to_uint8(rgb)
        fixed = {"gray_psnr": gray_psnr(rgb, L), "colorfulness_gt": colorfulness(true_u8),
                 "a_gt": float(lab[..., 1].mean()), "b_gt": float(lab[..., 2].mean())}
        for t in TEMPERATURES:
            mean, R, padded, hw = read_outs(model, L, size, t)
            for a in ALPHAS:
                for c in CHROMAS:
                    ab = read_ab(mean, R, padded, hw, L.shape, a, c)
                    pred = to_uint8(lab_to_rgb(L, ab))
                    out.setdefault((t, a, c), []).append(
                        {"psnr": psnr(pred, true_u8), "colorfulness": colorfulness(pred),
                         "a": float(ab[..., 0].mean()), "b": float(ab[..., 1].mean()), **fixed})
        print(f"\r  {i + 1}/{len(files)} images", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def row(key, s: dict) -> str:
    t, a, c = key
    return (f"| T {t:g}, alpha {a:g}, chroma {c:g} | {s['gain_mean']:+.2f} / {s['gain_median']:+.2f} | "
            f"{s['beat_gray']}/{s['n']} | {s['colorfulness_mean']:.1f} vs {s['colorfulness_gt_mean']:.1f} | "
            f"{s['colorfulness_absgap_mean']:.1f} | {s['a_mean'] - s['a_gt_mean']:+.1f} / {s['b_mean'] - s['b_gt_mean']:+.1f} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photos", type=Path, help="Evaluation folder (never trained on).")
    ap.add_argument("--model", default=None, help="Checkpoint with a classify head (default: the one colorize would use).")
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus"), help="Built corpus (val.txt).")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--tolerance", type=float, default=0.25, help="The calibration rule's PSNR tolerance (dB).")
    args = ap.parse_args(argv)

    from colorbatch.models.checkpoint import discover_model, load_checkpoint
    from colorbatch.sources import read_list_file
    from colorbatch.training.calibrate import summary

    model, _ = load_checkpoint(discover_model(args.model), device="cpu")
    if getattr(model, "head", "regress") != "classify":
        print("decode_variants: the model has no classify head (nothing to read out differently)", file=sys.stderr)
        return 2
    model.eval()
    print("validation scenes", file=sys.stderr)
    val = {k: summary(v) for k, v in measure(model, read_list_file(args.corpus / "val.txt"), args.size).items()}
    print("evaluation photos", file=sys.stderr)
    ev = {k: summary(v) for k, v in measure(
        model, sorted(p for p in args.photos.iterdir() if p.suffix.lower() in EXTS), args.size).items()}

    head = ("| read-out | gain mean / median | beat gray | colourfulness vs truth | mean abs gap | a* / b* off |\n"
            "|---|---|---|---|---|---|")
    best = max(s["psnr_mean"] for s in val.values())
    picks = []
    for a in ALPHAS:
        ok = [k for k in val if k[1] == a and val[k]["psnr_mean"] >= best - args.tolerance]
        if ok:
            picks.append(min(ok, key=lambda k: abs(val[k]["colorfulness_mean"] - val[k]["colorfulness_gt_mean"])))
    print(f"\nthe calibration rule's choice per alpha, on the validation scenes (within {args.tolerance:g} dB of "
          f"the best PSNR, {best:.2f} dB)\n" + head)
    for k in picks:
        print(row(k, val[k]))
    print("\nthe same choices on the evaluation photos\n" + head)
    for k in picks:
        print(row(k, ev[k]))
    print("\nthe expected chroma magnitude against the annealed mean, T 1, chroma 1 (validation scenes, "
          "then evaluation photos)\n" + head)
    for where in (val, ev):
        for a in (0.0, 1.0):
            print(row((1.0, a, 1.0), where[(1.0, a, 1.0)]))
    good = [k for k in ev if ev[k]["gain_mean"] >= 1.0 and ev[k]["beat_gray"] >= 0.7 * ev[k]["n"]]
    print("\nthe smallest gaps on the evaluation photos with gain >= 1 dB and >= 70% beating gray "
          "(chosen on them: for information)\n" + head)
    for k in sorted(good, key=lambda k: ev[k]["colorfulness_absgap_mean"])[:8]:
        print(row(k, ev[k]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
