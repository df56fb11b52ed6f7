"""Colour-quality metrics for colorized images with colour ground truth.

Every figure is computed for the prediction and for the *gray baseline* (a*b* = 0,
i.e. the input left gray), so a number is always read beside what doing nothing
scores:

``ab_mse``        mean squared error on a*b* / 128 over pixels and both channels:
                  the training loss's definition (the reference design reports
                  0.01495 on ILSVRC2017_DET).
``psnr``          PSNR (dB) on 8-bit sRGB after recombining the predicted a*b*
                  with the *true* L*, against the 8-bit ground truth.
``ssim``          SSIM on the same 8-bit RGB images (scikit-image,
                  ``channel_axis=2``, ``data_range=255``).
``colorfulness``  Hasler and Suesstrunk's colourfulness (0-255 sRGB scale) of the
                  recombined prediction; ``colorfulness_gt`` that of the truth and
                  ``colorfulness_gap`` = prediction - truth (negative: too dull).

Only numpy and scikit-image are used, so this module is cheap to import.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

METRICS = ("ab_mse", "psnr", "ssim", "colorfulness", "colorfulness_gap")
PSNR_CAP = 100.0  # identical images: report a finite, large value


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """float [0, 1] -> uint8 with rounding (values outside are clipped)."""
    return np.clip(np.rint(np.asarray(rgb, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB float [0, 1] HxWx3 -> CIE LAB (D65) float32 HxWx3."""
    from skimage.color import rgb2lab

    return rgb2lab(np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)).astype(np.float32)


def lab_to_rgb(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """L* (HxW) and a*b* (HxWx2) -> sRGB float [0, 1] HxWx3 (out-of-gamut clipped)."""
    import warnings

    from skimage.color import lab2rgb

    lab = np.concatenate([np.asarray(L, np.float64)[..., None], np.asarray(ab, np.float64)], axis=-1)
    with warnings.catch_warnings():  # out-of-gamut colours are clipped, as intended
        warnings.simplefilter("ignore", UserWarning)
        return np.clip(lab2rgb(lab), 0.0, 1.0).astype(np.float32)


def ab_mse(ab_pred: np.ndarray, ab_true: np.ndarray) -> float:
    """Mean of ((pred - true) / 128)^2 over all pixels and both channels."""
    d = (np.asarray(ab_pred, np.float64) - np.asarray(ab_true, np.float64)) / 128.0
    return float(np.mean(d * d))


def psnr(pred_u8: np.ndarray, true_u8: np.ndarray) -> float:
    """PSNR in dB of two uint8 images (peak 255); capped at 100 dB when equal."""
    d = pred_u8.astype(np.float64) - true_u8.astype(np.float64)
    mse = float(np.mean(d * d))
    if mse <= 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(255.0 * 255.0 / mse))


def ssim(pred_u8: np.ndarray, true_u8: np.ndarray) -> float:
    """SSIM of two uint8 RGB images (scikit-image defaults, 7x7 window)."""
    from skimage.metrics import structural_similarity

    h, w = true_u8.shape[:2]
    win = min(7, h, w)
    if win % 2 == 0:
        win -= 1
    if win < 3:
        return float("nan")
    return float(
        structural_similarity(pred_u8, true_u8, channel_axis=2, data_range=255, win_size=win)
    )


def colorfulness(rgb_u8: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) colourfulness on the 0-255 sRGB scale.

    rg = R - G, yb = (R + G) / 2 - B;
    C = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2).
    """
    x = np.asarray(rgb_u8, np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    sigma = math.sqrt(float(rg.std()) ** 2 + float(yb.std()) ** 2)
    mu = math.sqrt(float(rg.mean()) ** 2 + float(yb.mean()) ** 2)
    return sigma + 0.3 * mu


def image_metrics(rgb_true: np.ndarray, ab_pred: np.ndarray) -> dict:
    """All metrics of one image, for the prediction and the gray baseline.

    ``rgb_true`` is the ground truth (HxWx3 float [0, 1]); ``ab_pred`` the
    predicted a*b* (HxWx2) at the same resolution. L* comes from the truth.
    """
    rgb_true = np.asarray(rgb_true, np.float32)
    ab_pred = np.asarray(ab_pred, np.float32)
    if rgb_true.ndim != 3 or rgb_true.shape[-1] != 3:
        raise ValueError(f"ground truth must be HxWx3 RGB (got shape {rgb_true.shape})")
    if ab_pred.shape != rgb_true.shape[:2] + (2,):
        raise ValueError(
            f"predicted a*b* has shape {ab_pred.shape}, expected {rgb_true.shape[:2] + (2,)}"
        )
    lab = rgb_to_lab(rgb_true)
    L, ab_true = lab[..., 0], lab[..., 1:]
    true_u8 = to_uint8(rgb_true)
    c_true = colorfulness(true_u8)
    out: dict = {"colorfulness_gt": c_true}
    for prefix, ab in (("", ab_pred), ("gray_", np.zeros_like(ab_true))):
        pred_u8 = to_uint8(lab_to_rgb(L, ab))
        c = colorfulness(pred_u8)
        out[prefix + "ab_mse"] = ab_mse(ab, ab_true)
        out[prefix + "psnr"] = psnr(pred_u8, true_u8)
        out[prefix + "ssim"] = ssim(pred_u8, true_u8)
        out[prefix + "colorfulness"] = c
        out[prefix + "colorfulness_gap"] = c - c_true
    return out


def metric_names() -> list[str]:
    """Column order: each metric next to its gray baseline."""
    names = []
    for m in METRICS:
        names += [m, "gray_" + m]
    names.insert(names.index("colorfulness"), "colorfulness_gt")
    return names


def summarize(values: Iterable[float]) -> dict:
    """mean, median, std, p10, p90, min, max of finite values (NaN-free)."""
    a = np.asarray([v for v in values if v is not None and math.isfinite(v)], np.float64)
    if a.size == 0:
        return {k: None for k in ("mean", "median", "std", "p10", "p90", "min", "max")}
    return {
        "mean": float(a.mean()),
        "median": float(np.median(a)),
        "std": float(a.std()),
        "p10": float(np.percentile(a, 10)),
        "p90": float(np.percentile(a, 90)),
        "min": float(a.min()),
        "max": float(a.max()),
    }


def aggregate(rows: list[dict]) -> dict:
    """Per-metric summaries over per-image rows, plus the PSNR gain over gray.

    ``psnr_gain`` summarises per-image (psnr - gray_psnr); ``better_than_gray``
    is the fraction of images whose PSNR beats the gray baseline.
    """
    out: dict = {"images": len(rows)}
    for name in metric_names():
        out[name] = summarize(r.get(name) for r in rows)
    gains = [r["psnr"] - r["gray_psnr"] for r in rows if "psnr" in r and "gray_psnr" in r]
    out["psnr_gain"] = summarize(gains)
    out["better_than_gray"] = (sum(g > 0 for g in gains) / len(gains)) if gains else None
    return out
