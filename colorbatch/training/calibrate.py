"""Colour-strength calibration: the annealing temperature and chroma scale a model ships with.

A model trained for least squares is pale where it is unsure; sharpening its
predicted distribution (classify head: a temperature below 1) or scaling its
a*b* (any head: a chroma factor) makes it more vivid, at some point at the cost
of PSNR. :func:`calibrate` colorizes held-out colour photos once, tries a grid
of (temperature, chroma) and keeps the setting whose mean colourfulness is
closest to the truth's among those within ``psnr_tolerance`` dB of the best
mean PSNR. The result is stored in the checkpoint (``calibration``) and is
what ``colorize --chroma auto`` (the default) uses.

:func:`score` is the same measurement for reports: per image PSNR and
colourfulness of the prediction and of the gray baseline, and mean a*b*.
"""
from __future__ import annotations

import math

import numpy as np

TEMPERATURES = (1.0, 0.8, 0.65, 0.5, 0.38)
CHROMAS = (0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5, 1.7)
PSNR_TOLERANCE = 0.25


def predict(model, rgb: np.ndarray, size: int, device="cpu"):
    """One colour image (H x W x 3 float [0, 1]) -> (L* H x W, predictor(T, chroma) -> a*b* H x W x 2)."""
    import torch
    import torch.nn.functional as F

    from colorbatch.colorizer import net_shape, pad_batch, resize_L01
    from colorbatch.metrics import rgb_to_lab

    lab = rgb_to_lab(rgb)
    L = lab[..., 0]
    H, W = L.shape
    small = resize_L01(L.astype(np.float32), net_shape(H, W, size))
    h, w = small.shape[-2:]
    x = pad_batch([small], int(getattr(model, "multiple", 32))).to(device)
    classify = getattr(model, "head", "regress") == "classify"
    with torch.inference_mode():
        raw = model(x, logits=True) if classify else model(x)

    def at(temperature: float = 1.0, chroma: float = 1.0) -> np.ndarray:
        from colorbatch.models.bins import expected_ab

        with torch.inference_mode():
            if classify:
                ab = expected_ab(raw, temperature)
                ab = F.interpolate(ab, size=x.shape[-2:], mode="bilinear", align_corners=False)
            else:
                ab = raw
            ab = (ab[..., :h, :w] * chroma).clamp_(-1.0, 1.0) * 128.0
            ab = F.interpolate(ab, size=(H, W), mode="bilinear", align_corners=False)
        return ab[0].permute(1, 2, 0).cpu().numpy()

    return L, at


def image_scores(rgb_true: np.ndarray, L: np.ndarray, ab: np.ndarray) -> dict:
    """PSNR and colourfulness of a prediction and of gray; mean a*b* of prediction and truth."""
    from colorbatch.metrics import colorfulness, lab_to_rgb, psnr, rgb_to_lab, to_uint8

    true_u8 = to_uint8(rgb_true)
    pred_u8 = to_uint8(lab_to_rgb(L, ab))
    lab_t = rgb_to_lab(rgb_true)
    return {
        "psnr": psnr(pred_u8, true_u8),
        "colorfulness": colorfulness(pred_u8),
        "colorfulness_gt": colorfulness(true_u8),
        "a": float(ab[..., 0].mean()), "b": float(ab[..., 1].mean()),
        "a_gt": float(lab_t[..., 1].mean()), "b_gt": float(lab_t[..., 2].mean()),
    }


def gray_psnr(rgb_true: np.ndarray, L: np.ndarray) -> float:
    from colorbatch.metrics import lab_to_rgb, psnr, to_uint8

    return psnr(to_uint8(lab_to_rgb(L, np.zeros(L.shape + (2,), np.float32))), to_uint8(rgb_true))


def summary(rows: list[dict]) -> dict:
    """Aggregate per-image rows (each with psnr, gray_psnr, colorfulness, colorfulness_gt, a, b, a_gt, b_gt)."""
    gain = np.array([r["psnr"] - r["gray_psnr"] for r in rows])
    gap = np.array([r["colorfulness"] - r["colorfulness_gt"] for r in rows])
    col = lambda k: np.array([r[k] for r in rows], dtype=np.float64)  # noqa: E731
    return {
        "n": len(rows),
        "psnr_mean": float(col("psnr").mean()), "psnr_median": float(np.median(col("psnr"))),
        "gray_psnr_mean": float(col("gray_psnr").mean()), "gray_psnr_median": float(np.median(col("gray_psnr"))),
        "gain_mean": float(gain.mean()), "gain_median": float(np.median(gain)),
        "gain_p10": float(np.percentile(gain, 10)), "gain_p90": float(np.percentile(gain, 90)),
        "gain_min": float(gain.min()), "gain_max": float(gain.max()),
        "beat_gray": int((gain > 0).sum()),
        "colorfulness_mean": float(col("colorfulness").mean()),
        "colorfulness_gt_mean": float(col("colorfulness_gt").mean()),
        "colorfulness_gap_mean": float(gap.mean()),
        "colorfulness_absgap_mean": float(np.abs(gap).mean()),
        "a_mean": float(col("a").mean()), "b_mean": float(col("b").mean()),
        "a_gt_mean": float(col("a_gt").mean()), "b_gt_mean": float(col("b_gt").mean()),
    }


def grid_scores(model, images: list[np.ndarray], size: int, temperatures, chromas, device="cpu",
                progress=None) -> dict:
    """{(T, chroma): [per-image rows]} for every setting (the network runs once per image)."""
    out: dict = {}
    classify = getattr(model, "head", "regress") == "classify"
    temps = tuple(temperatures) if classify else (1.0,)
    for i, rgb in enumerate(images):
        L, at = predict(model, rgb, size, device)
        g = gray_psnr(rgb, L)
        for t in temps:
            for c in chromas:
                row = image_scores(rgb, L, at(t, c))
                row["gray_psnr"] = g
                out.setdefault((t, c), []).append(row)
        if progress:
            progress(i + 1)
    return out


def choose(grid: dict, psnr_tolerance: float = PSNR_TOLERANCE) -> tuple[tuple[float, float], dict]:
    """The setting closest to the truth's colourfulness within ``psnr_tolerance`` of the best PSNR."""
    sums = {k: summary(v) for k, v in grid.items()}
    best = max(s["psnr_mean"] for s in sums.values())
    ok = [k for k, s in sums.items() if s["psnr_mean"] >= best - psnr_tolerance]
    key = min(ok, key=lambda k: (abs(sums[k]["colorfulness_gap_mean"]), -sums[k]["psnr_mean"]))
    return key, sums


def calibrate(model, images: list[np.ndarray], size: int = 384, device="cpu", progress=None,
              temperatures=TEMPERATURES, chromas=CHROMAS) -> dict:
    """Fit (temperature, chroma) on colour images -> the checkpoint's ``calibration`` entry."""
    if not images:
        return {}
    grid = grid_scores(model, images, size, temperatures, chromas, device, progress)
    (t, c), sums = choose(grid)
    s = sums[(t, c)]
    plain = sums.get((1.0, 1.0)) or next(iter(sums.values()))
    clean = lambda d: {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v)  # noqa: E731
                       for k, v in d.items()}
    return {
        "temperature": t, "chroma": c, "images": len(images), "size": size,
        "rule": f"closest mean colourfulness to the truth's within {PSNR_TOLERANCE} dB of the best mean PSNR",
        "chosen": clean(s), "uncalibrated": clean(plain),
    }
