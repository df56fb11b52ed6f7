"""L*a*b* helpers for video frames.

``lab_to_rgb`` / ``lab_to_rgb_keep_L`` (used per frame when smoothing) are the
core's numpy-only helpers (``colorbatch.api.lab_to_rgb_numpy``, no torch: the
torch helpers cost several times more per frame on a busy CPU and would import
torch for a plain re-encode). ``rgb_to_L``/``gray_to_L`` use the core helpers.
"""
from __future__ import annotations

import numpy as np


def rgb_to_L(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 float32 sRGB [0,1] -> HxW float32 L* (0..100)."""
    from colorbatch.api import rgb_to_L_np

    return np.asarray(rgb_to_L_np(rgb), dtype=np.float32)


def gray_to_L(gray: np.ndarray) -> np.ndarray:
    """HxW float32 gray [0,1] -> HxW float32 L* of the sRGB gray (g, g, g)."""
    from colorbatch.api import gray_to_L_np

    return np.asarray(gray_to_L_np(gray), dtype=np.float32)


def lab_to_rgb(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """HxW L* and HxWx2 a*b* -> HxWx3 float32 sRGB in [0, 1], out-of-gamut
    channels clipped (scikit-image's way; numpy, D65)."""
    from colorbatch.api import lab_to_rgb_numpy

    return lab_to_rgb_numpy(L, ab)


def lab_to_rgb_keep_L(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Like :func:`lab_to_rgb`, but L* is kept exactly where a colour is out of gamut
    (what the core's colorize does)."""
    from colorbatch.api import lab_to_rgb_keep_L_numpy

    return lab_to_rgb_keep_L_numpy(L, ab)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def compose(L: np.ndarray, ab: np.ndarray | None) -> np.ndarray:
    """uint8 HxWx3 frame from full-resolution L* and a*b* (gray when ab is None),
    keeping L* where a colour is out of gamut, as the core's colorize does."""
    if ab is None:
        ab = np.zeros(np.shape(L) + (2,), np.float32)
    return to_uint8(lab_to_rgb_keep_L(L, ab))
