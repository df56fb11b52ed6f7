"""sRGB <-> CIE LAB, the one entry point: the fast CPU kernel or the reference formula per call, and numpy wrappers.

Colour conversion is split by purpose:

* :mod:`colorbatch.color_formulas`: the reference formulas in torch (scikit-image's,
  formula for formula), the constants, :func:`lab_to_rgb_keep_L`, gray <-> L*;
* :mod:`colorbatch.color_kernels`: fast CPU kernels of the same formulas (tiles,
  lookup tables), 8-bit L* (:func:`Lq_from_u8`) and 8-bit sRGB (:func:`srgb8_from_f`);
* :mod:`colorbatch.color_numpy`: LAB -> sRGB in numpy alone, for callers that must
  not import torch (the video plugin, through :mod:`colorbatch.api`).

This module picks the kernel or the formula for :func:`rgb_to_lab` / :func:`lab_to_rgb`
(same results to ~1e-4), re-exports the names above, and offers numpy-in,
numpy-out helpers (``rgb_to_L_np``, ``gray_to_L_np``, ``rgb_to_lab_np``,
``lab_to_rgb_np``; torch on the CPU underneath, in row chunks). torch is imported
inside the functions so that importing this module stays cheap.
"""
from __future__ import annotations

import numpy as np

from colorbatch import color_formulas as _formulas
from colorbatch import color_kernels as _kernels
from colorbatch.color_formulas import (  # noqa: F401 - re-exported
    RGB_FROM_XYZ,
    WHITE_D65,
    XYZ_FROM_RGB,
    L_to_gray,
    gray_to_L,
    lab_to_rgb_keep_L,
)
from colorbatch.color_kernels import Lq_from_u8, lab_to_srgb8_keep_L, srgb8_from_f  # noqa: F401 - re-exported
from colorbatch.color_numpy import lab_to_rgb_keep_L_numpy, lab_to_rgb_numpy  # noqa: F401 - re-exported


def rgb_to_lab(x):
    """sRGB in [0, 1], shape (..., 3, H, W) -> LAB (L* 0..100, a*, b* ~ -128..127)."""
    x = _formulas.as_float(x)
    if _kernels.cpu_fast(x):
        return _kernels.rgb_to_lab_cpu(x)
    return _formulas.rgb_to_lab(x)


def lab_to_rgb(x):
    """LAB, shape (..., 3, H, W) -> sRGB in [0, 1] (out-of-gamut values clipped)."""
    x = _formulas.as_float(x)
    if _kernels.cpu_fast(x):
        return _kernels.lab_to_rgb_cpu(x)
    return _formulas.lab_to_rgb(x)


def lab_to_rgb_from_parts(L, ab):
    """sRGB from L (B,1,H,W) and ab (B,2,H,W) tensors: (B,3,H,W) in [0, 1]."""
    import torch

    return lab_to_rgb(torch.cat((L, ab), dim=-3))


# --------------------------------------------------------------------------- #
# numpy helpers (CPU, float32)
# --------------------------------------------------------------------------- #

_ROWS = 1024  # rows per chunk, keeps temporaries small for huge images


def _chunked(fn, arrays, out_shape, rows=_ROWS):
    import torch

    h = arrays[0].shape[0]
    out = np.empty(out_shape, dtype=np.float32)
    with torch.inference_mode():
        for y in range(0, h, rows):
            parts = [torch.from_numpy(np.ascontiguousarray(a[y : y + rows], dtype=np.float32)) for a in arrays]
            out[y : y + rows] = fn(*parts).numpy()
    return out


def rgb_to_L_np(rgb: np.ndarray) -> np.ndarray:
    """L* (H x W float32, 0..100) of an H x W x 3 float sRGB image in [0, 1]."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"rgb_to_L_np expects H x W x 3, got shape {rgb.shape}")

    def fn(x):
        lin = _formulas.srgb_to_linear(x)
        m = XYZ_FROM_RGB[1]
        y = lin[..., 0] * m[0] + lin[..., 1] * m[1] + lin[..., 2] * m[2]
        return 116.0 * _formulas.lab_f(y) - 16.0

    return _chunked(fn, [rgb], rgb.shape[:2])


def gray_to_L_np(gray: np.ndarray) -> np.ndarray:
    """L* (H x W float32) of the sRGB gray (g, g, g) for an H x W float image in [0, 1]."""
    gray = np.asarray(gray)
    if gray.ndim != 2:
        raise ValueError(f"gray_to_L_np expects H x W, got shape {gray.shape}")
    return _chunked(gray_to_L, [gray], gray.shape)


def rgb_to_lab_np(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 sRGB [0, 1] -> H x W x 3 float32 LAB (like skimage.color.rgb2lab)."""
    rgb = np.asarray(rgb)
    return _chunked(lambda x: rgb_to_lab(x.movedim(-1, 0)).movedim(0, -1), [rgb], rgb.shape)


def lab_to_rgb_np(L: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """H x W x 3 float32 sRGB in [0, 1] from L* (H x W) and a*b* (H x W x 2)."""
    L = np.asarray(L)
    ab = np.asarray(ab)
    if L.ndim != 2 or ab.shape != L.shape + (2,):
        raise ValueError(f"lab_to_rgb_np expects L (H x W) and ab (H x W x 2), got {L.shape} and {ab.shape}")
    import torch

    def fn(l, a):
        lab = torch.cat((l.unsqueeze(0), a.movedim(-1, 0)), dim=0)
        return lab_to_rgb(lab).movedim(0, -1)

    return _chunked(fn, [L, ab], L.shape + (3,))

