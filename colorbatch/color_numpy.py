"""LAB -> sRGB in plain numpy (float32, no torch): for callers that must not import torch, such as video frames.

Written to match :mod:`colorbatch.color_formulas` (tested); slower than the
torch kernels on large batches, but cheap to import and free of torch's thread
pool, which matters per video frame on a busy CPU.
"""
from __future__ import annotations

import numpy as np

from colorbatch.color_formulas import RGB_FROM_XYZ, WHITE_D65

_M = np.array(RGB_FROM_XYZ, dtype=np.float32)  # linear RGB from XYZ


def _finv(t: np.ndarray) -> np.ndarray:
    return np.where(t > 6 / 29, t * t * t, (t - 4 / 29) * np.float32(3 * (6 / 29) ** 2))


def _to_srgb(lin: np.ndarray) -> np.ndarray:
    return np.where(lin > 0.0031308, 1.055 * np.power(lin, np.float32(1 / 2.4)) - 0.055, 12.92 * lin)


def _lin_rgb(L, ab, clamp_z: bool):
    L = np.asarray(L, np.float32)
    ab = np.asarray(ab, np.float32)
    fy = (L + 16.0) / 116.0
    fz = fy - ab[..., 1] / 200.0
    if clamp_z:
        fz = np.maximum(fz, 0.0)
    Y = _finv(fy)
    X = _finv(fy + ab[..., 0] / 500.0) * np.float32(WHITE_D65[0])
    Z = _finv(fz) * np.float32(WHITE_D65[2])
    lin = np.stack([_M[i, 0] * X + _M[i, 1] * Y + _M[i, 2] * Z for i in range(3)], axis=-1)
    return lin, Y


def lab_to_rgb_numpy(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """H x W L* and H x W x 2 a*b* -> H x W x 3 float32 sRGB in [0, 1], out-of-gamut
    channels clipped (scikit-image's way, as :func:`colorbatch.color.lab_to_rgb`)."""
    lin, _ = _lin_rgb(L, ab, clamp_z=True)
    return np.clip(_to_srgb(np.clip(lin, 0.0, None)), 0.0, 1.0).astype(np.float32)


def lab_to_rgb_keep_L_numpy(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Like :func:`lab_to_rgb_numpy`, but an out-of-gamut colour is moved towards the
    gray of the same luminance just far enough to fit, so L* is kept exactly (what
    colorize does; numpy twin of :func:`colorbatch.color.lab_to_rgb_keep_L`)."""
    lin, Y = _lin_rgb(L, ab, clamp_z=False)
    Y = np.clip(Y, 0.0, 1.0)[..., None]
    hi = lin.max(axis=-1, keepdims=True)
    lo = lin.min(axis=-1, keepdims=True)
    tiny = np.float32(1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        s_hi = np.where(hi > 1.0, (1.0 - Y) / np.maximum(hi - Y, tiny), 1.0)
        s_lo = np.where(lo < 0.0, Y / np.maximum(Y - lo, tiny), 1.0)
    s = np.clip(np.minimum(s_hi, s_lo), 0.0, 1.0)
    lin = (lin - Y) * s + Y
    return np.clip(_to_srgb(np.clip(lin, 0.0, 1.0)), 0.0, 1.0).astype(np.float32)
