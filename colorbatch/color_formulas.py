"""Reference sRGB <-> CIE LAB formulas (D65, 2 degree observer) in torch, matching scikit-image.

The functions work on tensors shaped ``(..., 3, H, W)`` on any device and in any
float dtype (computed in float32 at least). They follow ``skimage.color.rgb2lab``
/ ``lab2rgb`` formula for formula (same matrix, same piecewise constants), so
results agree to ~1e-4 in L*, a*, b*. Out-of-gamut LAB on the way back is handled
like scikit-image: a negative Z is clamped to 0 and each linear RGB channel is
clipped to [0, 1] after gamma, which keeps the hue of mild excursions and never
produces NaN. The fast CPU kernels (:mod:`colorbatch.color_kernels`) evaluate
the same formulas; :mod:`colorbatch.color` picks between them.

torch is imported inside the functions so that importing this module stays cheap.
"""
from __future__ import annotations

import numpy as np

# sRGB (linear) -> XYZ, as in scikit-image
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
RGB_FROM_XYZ = tuple(tuple(float(v) for v in row) for row in np.linalg.inv(np.array(XYZ_FROM_RGB)))
WHITE_D65 = (0.95047, 1.0, 1.08883)

EPS = 0.008856  # CIE threshold on t = X/Xn used by scikit-image
KAPPA = 7.787
F_EPS = 0.2068966  # f(EPS), threshold on the way back


# Piecewise curves without branches: both pieces meet at the threshold, so
#   piece_hi(max(x, thr)) + (piece_lo(min(x, thr)) - piece_lo(thr))
# equals piece_lo below the threshold and piece_hi above it. Powers are taken as
# exp(k * log(x)) in place: on CPUs this is ~2x faster than pow and allocates less.
SRGB_THR = 0.04045
LIN_THR = 0.0031308


def _powi_(x, k: float):
    """x ** k for x > 0, in place (x is consumed)."""
    return x.log_().mul_(k).exp_()


def srgb_to_linear(c):
    """sRGB gamma -> linear light (any shape)."""
    hi = _powi_(c.clamp(min=SRGB_THR).add_(0.055).div_(1.055), 2.4)
    return hi.add_(c.clamp(max=SRGB_THR).sub_(SRGB_THR).div_(12.92))


def linear_to_srgb(c):
    """Linear light -> sRGB gamma (any shape)."""
    hi = _powi_(c.clamp(min=LIN_THR), 1 / 2.4).mul_(1.055).sub_(0.055)
    return hi.add_(c.clamp(max=LIN_THR).sub_(LIN_THR).mul_(12.92))


def lab_f(t):
    """CIE LAB's f(t) (cube root with a linear toe)."""
    hi = _powi_(t.clamp(min=EPS), 1.0 / 3.0)
    return hi.add_(t.clamp(max=EPS).sub_(EPS).mul_(KAPPA))


def lab_f_inv(t):
    """Inverse of :func:`lab_f`."""
    c = t.clamp(min=F_EPS)
    hi = c * c
    hi.mul_(c)
    return hi.add_(t.clamp(max=F_EPS).sub_(F_EPS).div_(KAPPA))


def as_float(x):
    """``x`` as float32 at least (half precision is widened)."""
    import torch

    if not torch.is_floating_point(x) or x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def rgb_to_lab(x):
    """sRGB in [0, 1], shape (..., 3, H, W) -> LAB (L* 0..100, a*, b* ~ -128..127)."""
    import torch

    lin = srgb_to_linear(as_float(x))
    r, g, b = lin.unbind(-3)
    m = XYZ_FROM_RGB
    fx = lab_f((m[0][0] * r + m[0][1] * g + m[0][2] * b) / WHITE_D65[0])
    fy = lab_f(m[1][0] * r + m[1][1] * g + m[1][2] * b)
    fz = lab_f((m[2][0] * r + m[2][1] * g + m[2][2] * b) / WHITE_D65[2])
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def xyz_to_linear_rgb(X, Y, Z):
    """Stack X, Y, Z planes through ``RGB_FROM_XYZ`` into linear sRGB (channel dim -3)."""
    import torch

    m = RGB_FROM_XYZ
    return torch.stack(
        (
            m[0][0] * X + m[0][1] * Y + m[0][2] * Z,
            m[1][0] * X + m[1][1] * Y + m[1][2] * Z,
            m[2][0] * X + m[2][1] * Y + m[2][2] * Z,
        ),
        dim=-3,
    )


def lab_to_rgb(x):
    """LAB, shape (..., 3, H, W) -> sRGB in [0, 1] (out-of-gamut values clipped)."""
    L, a, b = as_float(x).unbind(-3)
    fy = (L + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = (fy - b / 200.0).clamp(min=0.0)
    X = lab_f_inv(fx) * WHITE_D65[0]
    Y = lab_f_inv(fy)
    Z = lab_f_inv(fz) * WHITE_D65[2]
    rgb = xyz_to_linear_rgb(X, Y, Z)
    return linear_to_srgb(rgb).clamp_(0.0, 1.0)


def lab_to_rgb_keep_L(x):
    """LAB (..., 3, H, W) -> sRGB in [0, 1], desaturating out-of-gamut colours at constant L*.

    Per-channel clipping (scikit-image's way, :func:`lab_to_rgb`) changes L* where
    a colour is out of gamut (bright highlights, deep shadows). Here such a
    colour is moved in linear RGB along the line towards the gray of the same
    luminance, ``(Y, Y, Y)``, just far enough to fit: luminance Y is linear in
    linear RGB, so Y (and therefore L*) is kept exactly, and the hue nearly so.
    One closed-form pass, no search.
    """
    import torch

    x = as_float(x)
    L, a, b = x.unbind(-3)
    fy = (L + 16.0) / 116.0
    Y = lab_f_inv(fy).clamp_(0.0, 1.0)
    X = lab_f_inv(a / 500.0 + fy).mul_(WHITE_D65[0])
    Z = lab_f_inv(fy - b / 200.0).mul_(WHITE_D65[2])
    lin = xyz_to_linear_rgb(X, Y, Z)
    hi = lin.amax(dim=-3)
    lo = lin.amin(dim=-3)
    tiny = 1e-12
    s_hi = torch.where(hi > 1.0, (1.0 - Y) / (hi - Y).clamp_(min=tiny), torch.ones_like(Y))
    s_lo = torch.where(lo < 0.0, Y / (Y - lo).clamp_(min=tiny), torch.ones_like(Y))
    s = torch.minimum(s_hi, s_lo).clamp_(0.0, 1.0).unsqueeze(-3)
    Yc = Y.unsqueeze(-3)
    lin = (lin - Yc).mul_(s).add_(Yc)
    return linear_to_srgb(lin.clamp_(0.0, 1.0)).clamp_(0.0, 1.0)


def gray_to_L(g):
    """L* of the sRGB gray (g, g, g) for gray values g in [0, 1] (any shape)."""
    # the rows of XYZ_FROM_RGB's middle line sum to 1: Y of (g,g,g) is linear(g)
    return 116.0 * lab_f(srgb_to_linear(as_float(g))) - 16.0


def L_to_gray(L):
    """Inverse of :func:`gray_to_L`: the sRGB gray value whose L* is ``L`` (any shape)."""
    return linear_to_srgb(lab_f_inv((as_float(L) + 16.0) / 116.0)).clamp(0.0, 1.0)

