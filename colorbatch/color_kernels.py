"""Fast CPU kernels for sRGB <-> CIE LAB and 8-bit L*/sRGB: the reference formulas on cache-sized tiles and tables.

Each kernel evaluates :mod:`colorbatch.color_formulas` (and agrees with it, tested):
on cache-sized tiles of pixels with preallocated buffers, each step in place or into
a buffer (``out=``), the 3x3 matrix as fused multiply-adds per channel with the
pieces' constant offsets folded into its first term, the piecewise curves
branch-free (no masks / torch.where), powers as exp(k * log(x)), and 8-bit
conversions through lookup tables. torch is imported inside the functions.
"""
from __future__ import annotations

import math

import numpy as np

from colorbatch.color_formulas import (
    EPS as _EPS,
    F_EPS as _F_EPS,
    KAPPA as _KAPPA,
    LIN_THR as _LIN_THR,
    RGB_FROM_XYZ,
    SRGB_THR as _SRGB_THR,
    WHITE_D65,
    XYZ_FROM_RGB,
    as_float as _as_float,
    gray_to_L,
    lab_f as _f,
    lab_f_inv as _f_inv,
    linear_to_srgb as _linear_to_srgb,
    srgb_to_linear as _srgb_to_linear,
)

_TILE = 1 << 15  # pixels per tile: a (3, tile) float32 buffer is 384 KiB

_S24 = 1.055**2.4  # (c + 0.055) ** 2.4 = _S24 * linear(c) on the power piece
_K_LIN = _S24 / 12.92  # slope of sRGB's linear piece in those units
_FINV_OFF = -_F_EPS / _KAPPA  # offset of f^-1 as evaluated below (hi(max) + min / kappa)


def _matrices():
    """The (3, 4) matrices [M | offset] of the kernels, applied to (4, T) buffers whose
    last row is ones (the offsets come with the matmul)."""
    global _MATS
    if _MATS is None:
        import torch

        def aug(m, off):
            return torch.tensor([list(r) + [o] for r, o in zip(m, off)], dtype=torch.float32)

        # rgb -> lab: (S24 * linear sRGB - K_LIN * thr) -> X/Xn, Y, Z/Zn
        a = [[XYZ_FROM_RGB[i][j] / WHITE_D65[i] / _S24 for j in range(3)] for i in range(3)]
        xyz = aug(a, [-_K_LIN * _SRGB_THR * sum(r) for r in a])
        # (f + KAPPA * EPS) -> L*, a*, b*
        f = [[0.0, 116.0, 0.0], [500.0, -500.0, 0.0], [0.0, 200.0, -200.0]]
        lab = aug(f, [-16.0 - 116.0 * _KAPPA * _EPS, 0.0, 0.0])
        # lab -> rgb: L*, a*, b* -> fx, fy, fz (less 16/116)
        fin = torch.tensor([[1 / 116, 1 / 500, 0.0], [1 / 116, 0.0, 0.0], [1 / 116, 0.0, -1 / 200]], dtype=torch.float32)
        # (f^-1 - FINV_OFF) -> linear sRGB, white point folded in
        rgb = aug(_M_W, [_FINV_OFF * sum(r) for r in _M_W])
        _MATS = (xyz, lab, fin, rgb)
    return _MATS


_MATS = None


def cpu_fast(x) -> bool:
    """True when ``x`` suits the CPU kernels (float32 on the CPU, no autograd, not being compiled)."""
    import torch

    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.dim() >= 3
        and x.shape[-3] == 3
        and not (x.requires_grad and torch.is_grad_enabled())
        and not torch.compiler.is_compiling()  # compiled, the plain formulas fuse better
    )


def rgb_to_lab_cpu(x):
    """:func:`colorbatch.color_formulas.rgb_to_lab` for a float32 CPU tensor (see :func:`cpu_fast`)."""
    return _tiled(_rgb_to_lab_tile, x)


def lab_to_rgb_cpu(x):
    """:func:`colorbatch.color_formulas.lab_to_rgb` for a float32 CPU tensor (see :func:`cpu_fast`)."""
    return _tiled(_lab_to_rgb_tile, x)


def _tiled(kernel, x):
    """Run ``kernel(src, dst, a, b)`` over tiles of (..., 3, H, W) float32 ``x``:
    src and dst are (3, T) views, a and b (3, T) scratch buffers, a the top of a
    (4, T) buffer whose last row is ones (b as a (4, T) view for the matmuls)."""
    import torch

    shape = x.shape
    n = shape[-2] * shape[-1]
    if x.numel() == 0:
        return torch.empty(shape, dtype=torch.float32)
    src = x.reshape(x.numel() // (3 * n), 3, n)
    dst = torch.empty(src.shape, dtype=torch.float32)
    t = min(_TILE, n)
    aug = torch.empty((4, t), dtype=torch.float32)
    aug[3] = 1.0
    other = torch.empty((3, t), dtype=torch.float32)
    sets = {}
    for i in range(src.shape[0]):
        for s in range(0, n, t):
            e = min(n, s + t)
            bufs = sets.get(e - s)
            if bufs is None:
                a4 = aug[:, : e - s]
                bufs = sets[e - s] = (a4, a4[:3], other[:, : e - s])
            kernel(src[i, :, s:e], dst[i, :, s:e], *bufs)
    return dst.reshape(shape)


def _rgb_to_lab_tile(c, out, hi4, hi, lo):
    import torch

    k = _scalar
    m_xyz, m_lab, _, _ = _matrices()
    # linear sRGB (scaled by _S24, offset -_K_LIN * thr): (max(c, thr) + 0.055) ** 2.4 + min(c, thr) * _K_LIN
    torch.clamp(c, min=_SRGB_THR, out=hi)
    hi.add_(k(0.055)).log_().mul_(k(2.4)).exp_()
    hi.add_(torch.clamp(c, max=_SRGB_THR, out=lo), alpha=_K_LIN)
    torch.mm(m_xyz, hi4, out=lo)  # X/Xn, Y, Z/Zn
    # f(t) + _KAPPA * _EPS: max(t, eps) ** (1/3) + _KAPPA * min(t, eps)
    torch.clamp(lo, min=_EPS, out=hi)
    hi.log_().mul_(k(1.0 / 3.0)).exp_()
    hi.add_(lo.clamp_(max=_EPS), alpha=_KAPPA)
    torch.mm(m_lab, hi4, out=out)


def _lab_to_rgb_tile(x, out, hi4, hi, f):
    import torch

    k = _scalar
    _, _, m_f, m_rgb = _matrices()
    torch.mm(m_f, x, out=f).add_(k(16.0 / 116.0))
    f[2].clamp_(min=0.0)
    # f^-1 - _FINV_OFF: max(f, F_EPS) ** 3 + min(f, F_EPS) / kappa
    torch.clamp(f, min=_F_EPS, out=hi).pow_(3)
    hi.add_(f.clamp_(max=_F_EPS), alpha=1.0 / _KAPPA)
    torch.mm(m_rgb, hi4, out=f)  # linear sRGB
    # sRGB: 1.055 * max(v, thr) ** (1/2.4) - 0.055 + 12.92 * (min(v, thr) - thr), clipped;
    # the factor 1.055 as + log(1.055) before exp
    torch.clamp(f, min=_LIN_THR, out=hi)
    torch.add(k(math.log(1.055)), hi.log_(), alpha=1.0 / 2.4, out=hi).exp_()
    torch.add(hi, f.clamp_(max=_LIN_THR), alpha=12.92, out=out)
    out.sub_(k(0.055 + 12.92 * _LIN_THR)).clamp_(0.0, 1.0)


_SCALARS = {}


def _scalar(v: float):
    """0-dim float32 CPU tensor holding v (cached): lets torch.add(v, t, alpha=k) fuse v + k * t."""
    t = _SCALARS.get(v)
    if t is None:
        import torch

        t = _SCALARS[v] = torch.tensor(v, dtype=torch.float32)
    return t


def lab_to_srgb8_keep_L(L, a, b):
    """Fast path of :func:`lab_to_rgb_keep_L` to 8 bits: L*, a*, b* planes (H, W)
    -> (H, W, 3) uint8 sRGB, channels last (ready for numpy / image writers).

    Same result as ``round(255 * lab_to_rgb_keep_L(...))`` with fewer passes
    over memory: the XYZ -> RGB matrix (white point folded in) is one matmul on
    channels-last data and most updates happen in place.
    """
    import torch

    if L.device.type == "cpu":
        fy = (_as_float(L) + 16.0) / 116.0
        fx = _as_float(a).div(500.0).add_(fy)
        fz = torch.sub(fy, _as_float(b), alpha=1.0 / 200.0)
        Ys = _f_inv(fy).clamp_(0.0, 1.0).mul_(_LUT_N - 1)
        return srgb8_from_f(Ys, fx, fz)
    fy = (_as_float(L) + 16.0) / 116.0
    X = _f_inv(fy + _as_float(a) / 500.0)
    Z = _f_inv(fy - _as_float(b) / 200.0)
    Y = _f_inv(fy).clamp_(0.0, 1.0)
    xyz = torch.stack((X, Y, Z), dim=-1)
    del X, Z
    m = torch.tensor(RGB_FROM_XYZ, dtype=xyz.dtype, device=xyz.device)
    m = m * torch.tensor(WHITE_D65, dtype=xyz.dtype, device=xyz.device).view(1, 3)
    lin = xyz @ m.t()
    del xyz
    hi = lin.amax(dim=-1)
    lo = lin.amin(dim=-1)
    need = (hi > 1.0) | (lo < 0.0)
    if bool(need.any()):
        tiny = 1e-12
        s_hi = (1.0 - Y).div_((hi - Y).clamp_(min=tiny)).clamp_(max=1.0)
        s_lo = Y.div((Y - lo).clamp_(min=tiny)).clamp_(max=1.0)
        s = torch.minimum(s_hi, s_lo).clamp_(0.0, 1.0)
        Yc = Y.unsqueeze(-1)
        lin.sub_(Yc).mul_(s.unsqueeze(-1)).add_(Yc)
    lin.clamp_(0.0, 1.0)
    if lin.device.type == "cpu":
        # gamma + quantisation through a 65536-entry table: one numpy gather
        # instead of ~10 passes (exp/log) over three planes; within 1 code of exact
        idx = lin.mul_(_LUT_N - 1).add_(0.5).to(torch.int32)
        return torch.from_numpy(np.take(_srgb8_lut(), idx.numpy()))
    return _linear_to_srgb(lin).mul_(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)


_LUT_N = 65536
_LUT = None

# XYZ (white folded in) -> linear sRGB, as plain floats for the CPU kernel
_M_W = tuple(tuple(RGB_FROM_XYZ[i][j] * WHITE_D65[j] for j in range(3)) for i in range(3))


def _f_inv_cube_(t):
    """f^-1 of CIE LAB for float32 tensor ``t`` (t is consumed: result in a new tensor)."""
    if float(t.amin()) >= _F_EPS:  # the usual case: no dark pixel in the tile
        out = t * t
        return out.mul_(t)
    # branch-free (masks and torch.where are ~10x slower than arithmetic on CPU)
    c = t.clamp(min=_F_EPS)
    out = c * c
    out.mul_(c)
    return out.add_(t.clamp_(max=_F_EPS).sub_(_F_EPS).div_(_KAPPA))


def srgb8_from_f(Ys, fx, fz):
    """CPU kernel of :func:`lab_to_srgb8_keep_L`: from float32 planes (H, W) of
    the luminance Y (clamped to [0, 1]) in table units, ``Ys = Y * 65535``,
    fx = fy + a*/500 and fz = fy - b*/200 (both consumed; fy = (L*+16)/116),
    the (H, W, 3) uint8 sRGB image.

    Few passes over memory, meant for cache-sized tiles: X and Z by two
    multiplications (the linear piece of f^-1 only in tiles with dark pixels),
    the 3x3 matrix (white point and table scale folded in) as three fused
    multiply-adds per channel, the gamut correction only in tiles that need it,
    and gamma + quantisation through a 65536-entry table indexed by truncation.
    """
    import torch

    S = float(_LUT_N - 1)
    X = _f_inv_cube_(fx)
    del fx
    Z = _f_inv_cube_(fz)
    del fz
    m = _M_W
    planes = []
    for i in range(3):
        c = X * (m[i][0] * S)
        c.add_(Ys, alpha=m[i][1]).add_(Z, alpha=m[i][2] * S)
        planes.append(c)
    del X, Z
    Y = Ys
    lo = min(float(p.amin()) for p in planes)
    hi = max(float(p.amax()) for p in planes)
    if lo < 0.0 or hi > S:
        # Y is a convex combination of r, g, b, so min <= Y <= max and both ratios
        # below are >= 1 for in-gamut pixels: one branch-free pass over the tile
        r, g, b = planes
        cmax = torch.maximum(r, g)
        torch.maximum(cmax, b, out=cmax)
        cmin = torch.minimum(r, g)
        torch.minimum(cmin, b, out=cmin)
        tiny = 1e-12
        s = torch.sub(S, Y).div_(cmax.sub_(Y).clamp_(min=tiny))
        s_lo = Y.div(torch.sub(Y, cmin).clamp_(min=tiny))
        del cmax, cmin
        torch.minimum(s, s_lo, out=s)
        s.clamp_(0.0, 1.0)
        del s_lo
        for p in planes:
            p.sub_(Y).mul_(s).add_(Y)
        del s
    lut = _srgb8_lut_floor()
    H, W = Y.shape
    out = np.empty((H, W, 3), dtype=np.uint8)
    q = torch.empty((H, W), dtype=torch.int64)
    for i, p in enumerate(planes):
        q.copy_(p)  # truncation = floor: values are >= 0 up to rounding (-0.x -> 0)
        out[..., i] = np.take(lut, q.numpy())
        planes[i] = None
    return torch.from_numpy(out)


_LUT_FLOOR = None


def _srgb8_lut_floor():
    """Like :func:`_srgb8_lut` but for indices ``floor(v * 65535)``: entry i holds
    the value at the middle of its bin, (i + 0.5) / 65535; one spare entry at the end."""
    global _LUT_FLOOR
    if _LUT_FLOOR is None:
        import torch

        grid = ((torch.arange(_LUT_N + 1, dtype=torch.float64) + 0.5) / (_LUT_N - 1)).clamp_(max=1.0)
        _LUT_FLOOR = _linear_to_srgb(grid).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
    return _LUT_FLOOR


def _srgb8_lut():
    global _LUT
    if _LUT is None:
        import torch

        grid = torch.linspace(0.0, 1.0, _LUT_N, dtype=torch.float64)
        _LUT = _linear_to_srgb(grid).mul_(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
    return _LUT


# --------------------------------------------------------------------------- #
# L* of 8-bit images by table lookup (quantised like the colorizer: L* * 655.35)
# --------------------------------------------------------------------------- #

_LQ_SCALE = 655.35
_Y_BINS = 1 << 18  # luminance bins: L* error < 0.002 near black, far less elsewhere
_L8_TABLES = None


def _l8_tables():
    global _L8_TABLES
    if _L8_TABLES is None:
        import torch

        with torch.inference_mode():
            v = torch.arange(256, dtype=torch.float64) / 255.0
            lin = _srgb_to_linear(v.clone())
            gray = (gray_to_L(v.clone()) * _LQ_SCALE).round_().clamp_(0, 65535)
            m = XYZ_FROM_RGB[1]
            # per-channel contributions to Y, scaled to bin units (+0.5 in one: rounding)
            ch = [(lin * (m[c] * (_Y_BINS - 1)) + (0.5 if c == 0 else 0.0)).float().numpy() for c in range(3)]
            y = torch.arange(_Y_BINS + 1, dtype=torch.float64) / (_Y_BINS - 1)
            Lq = ((116.0 * _f(y.clamp(max=1.0)) - 16.0) * _LQ_SCALE).round_().clamp_(0, 65535)
        _L8_TABLES = (gray.to(torch.int32).numpy().astype(np.uint16), ch, Lq.to(torch.int32).numpy().astype(np.uint16))
    return _L8_TABLES


def Lq_from_u8(pixels: np.ndarray, tile_pixels: int = 1 << 16) -> np.ndarray:
    """Quantised L* (uint16, L* * 655.35) of a uint8 sRGB image (H x W gray or
    H x W x 3) by table lookup: 8-bit gray -> L* is a 256-entry table; for colour,
    Y = sum of three 256-entry tables (linearisation and matrix row folded in),
    then a table from Y to L*. Agrees with rgb_to_L_np / gray_to_L_np to < 0.003 L*."""
    gray, ch, ylut = _l8_tables()
    if pixels.ndim == 2:
        return np.take(gray, pixels)
    H, W = pixels.shape[:2]
    out = np.empty((H, W), dtype=np.uint16)
    step = max(1, tile_pixels // max(1, W))  # row bands that stay in the caches
    for y0 in range(0, H, step):
        p = pixels[y0 : y0 + step]
        y = np.take(ch[0], p[..., 0])
        y += np.take(ch[1], p[..., 1])
        y += np.take(ch[2], p[..., 2])
        out[y0 : y0 + step] = np.take(ylut, y.astype(np.intp))
    return out
