"""L*a*b* helpers for video frames.

``lab_to_rgb`` / ``lab_to_rgb_keep_L`` (used per frame when smoothing) are plain
numpy, float32, written to match ``colorbatch.color`` (tested): the core
helpers go through torch, which cost several times more per frame on a busy
CPU and would import torch for a plain re-encode. ``rgb_to_L``/``gray_to_L``
use the core helpers.
"""
from __future__ import annotations

import numpy as np

from colorbatch.api import WHITE_D65 as _WHITE, XYZ_FROM_RGB  # the core's constants


def rgb_to_L(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 float32 sRGB [0,1] -> HxW float32 L* (0..100)."""
    from colorbatch.api import rgb_to_L_np

    return np.asarray(rgb_to_L_np(rgb), dtype=np.float32)


def gray_to_L(gray: np.ndarray) -> np.ndarray:
    """HxW float32 gray [0,1] -> HxW float32 L* of the sRGB gray (g, g, g)."""
    from colorbatch.api import gray_to_L_np

    return np.asarray(gray_to_L_np(gray), dtype=np.float32)


_M = np.linalg.inv(np.array(XYZ_FROM_RGB)).astype(np.float32)  # linear RGB from XYZ


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
    X = _finv(fy + ab[..., 0] / 500.0) * np.float32(_WHITE[0])
    Z = _finv(fz) * np.float32(_WHITE[2])
    lin = np.stack([_M[i, 0] * X + _M[i, 1] * Y + _M[i, 2] * Z for i in range(3)], axis=-1)
    return lin, Y


def lab_to_rgb(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """HxW L* and HxWx2 a*b* -> HxWx3 float32 sRGB in [0, 1], out-of-gamut
    channels clipped (scikit-image's way; numpy, D65)."""
    lin, _ = _lin_rgb(L, ab, clamp_z=True)
    return np.clip(_to_srgb(np.clip(lin, 0.0, None)), 0.0, 1.0).astype(np.float32)


def lab_to_rgb_keep_L(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Like :func:`lab_to_rgb`, but an out-of-gamut colour is moved towards the
    gray of the same luminance just far enough to fit, so L* is kept exactly
    (what the core's colorize does; numpy twin of ``color.lab_to_rgb_keep_L``)."""
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


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def compose(L: np.ndarray, ab: np.ndarray | None) -> np.ndarray:
    """uint8 HxWx3 frame from full-resolution L* and a*b* (gray when ab is None),
    keeping L* where a colour is out of gamut, as the core's colorize does."""
    if ab is None:
        ab = np.zeros(np.shape(L) + (2,), np.float32)
    return to_uint8(lab_to_rgb_keep_L(L, ab))
