"""L*a*b* helpers: the core's numpy helpers (colorbatch.color), with a
scikit-image fallback while the core module is not there."""
from __future__ import annotations

import numpy as np


def _core(name):
    try:
        from colorbatch import color
    except ImportError:
        return None
    return getattr(color, name, None)


def rgb_to_L(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 float32 sRGB [0,1] -> HxW float32 L* (0..100)."""
    fn = _core("rgb_to_L_np")
    if fn is not None:
        return np.asarray(fn(rgb), dtype=np.float32)
    from skimage.color import rgb2lab

    return rgb2lab(rgb)[..., 0].astype(np.float32)


def gray_to_L(gray: np.ndarray) -> np.ndarray:
    """HxW float32 gray [0,1] -> HxW float32 L* of the sRGB gray (g, g, g)."""
    fn = _core("gray_to_L_np")
    if fn is not None:
        return np.asarray(fn(gray), dtype=np.float32)
    g = np.clip(gray.astype(np.float32), 0.0, 1.0)
    lin = np.where(g <= 0.04045, g / 12.92, ((g + 0.055) / 1.055) ** 2.4)
    f = np.where(lin > 216 / 24389, np.cbrt(lin), (24389 / 27 * lin + 16) / 116)
    return (116 * f - 16).astype(np.float32)


def lab_to_rgb(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """HxW L* and HxWx2 a*b* -> HxWx3 float32 sRGB in [0, 1]."""
    fn = _core("lab_to_rgb_np")
    if fn is not None:
        return np.asarray(fn(L, ab), dtype=np.float32)
    from skimage.color import lab2rgb

    lab = np.concatenate([L[..., None], ab], axis=-1).astype(np.float64)
    return np.clip(lab2rgb(lab), 0, 1).astype(np.float32)


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def compose(L: np.ndarray, ab: np.ndarray | None) -> np.ndarray:
    """uint8 HxWx3 frame from full-resolution L* and a*b* (gray when ab is None)."""
    if ab is None:
        ab = np.zeros(L.shape + (2,), np.float32)
    return to_uint8(lab_to_rgb(L, ab))
