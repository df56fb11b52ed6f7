"""sRGB <-> CIE LAB (D65, 2 degree observer), batched in torch, matching scikit-image.

The torch functions work on tensors shaped ``(..., 3, H, W)`` on any device and
in any float dtype (computed in float32 at least). They follow
``skimage.color.rgb2lab`` / ``lab2rgb`` formula for formula (same matrix, same
piecewise constants), so results agree to ~1e-4 in L*, a*, b*.

Out-of-gamut LAB on the way back is handled like scikit-image: a negative Z is
clamped to 0 and each linear RGB channel is clipped to [0, 1] after gamma, which
keeps the hue of mild excursions and never produces NaN.

The numpy helpers (``rgb_to_L_np``, ``gray_to_L_np``, ``lab_to_rgb_np``) are
for the image reader and the colorizer; they use torch on the CPU underneath.

torch is imported inside the functions so that importing this module stays cheap.
"""
from __future__ import annotations

import math

import numpy as np

# sRGB (linear) -> XYZ, as in scikit-image
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
RGB_FROM_XYZ = tuple(tuple(float(v) for v in row) for row in np.linalg.inv(np.array(XYZ_FROM_RGB)))
WHITE_D65 = (0.95047, 1.0, 1.08883)

_EPS = 0.008856  # CIE threshold on t = X/Xn used by scikit-image
_KAPPA = 7.787
_F_OFFSET = 16.0 / 116.0
_F_EPS = 0.2068966  # f(_EPS), threshold on the way back


# Piecewise curves without branches: both pieces meet at the threshold, so
#   piece_hi(max(x, thr)) + (piece_lo(min(x, thr)) - piece_lo(thr))
# equals piece_lo below the threshold and piece_hi above it. Powers are taken as
# exp(k * log(x)) in place: on CPUs this is ~2x faster than pow and allocates less.
_SRGB_THR = 0.04045
_LIN_THR = 0.0031308


def _powi_(x, k: float):
    """x ** k for x > 0, in place (x is consumed)."""
    return x.log_().mul_(k).exp_()


def _srgb_to_linear(c):
    hi = _powi_(c.clamp(min=_SRGB_THR).add_(0.055).div_(1.055), 2.4)
    return hi.add_(c.clamp(max=_SRGB_THR).sub_(_SRGB_THR).div_(12.92))


def _linear_to_srgb(c):
    hi = _powi_(c.clamp(min=_LIN_THR), 1 / 2.4).mul_(1.055).sub_(0.055)
    return hi.add_(c.clamp(max=_LIN_THR).sub_(_LIN_THR).mul_(12.92))


def _f(t):
    hi = _powi_(t.clamp(min=_EPS), 1.0 / 3.0)
    return hi.add_(t.clamp(max=_EPS).sub_(_EPS).mul_(_KAPPA))


def _f_inv(t):
    c = t.clamp(min=_F_EPS)
    hi = c * c
    hi.mul_(c)
    return hi.add_(t.clamp(max=_F_EPS).sub_(_F_EPS).div_(_KAPPA))


def _as_float(x):
    import torch

    if not torch.is_floating_point(x) or x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def rgb_to_lab(x):
    """sRGB in [0, 1], shape (..., 3, H, W) -> LAB (L* 0..100, a*, b* ~ -128..127)."""
    x = _as_float(x)
    if _cpu_fast(x):
        return _tiled(_rgb_to_lab_tile, x)
    lin = _srgb_to_linear(x)
    r, g, b = lin.unbind(-3)
    m = XYZ_FROM_RGB
    fx = _f((m[0][0] * r + m[0][1] * g + m[0][2] * b) / WHITE_D65[0])
    fy = _f(m[1][0] * r + m[1][1] * g + m[1][2] * b)
    fz = _f((m[2][0] * r + m[2][1] * g + m[2][2] * b) / WHITE_D65[2])
    import torch

    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def _xyz_to_linear_rgb(X, Y, Z):
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
    x = _as_float(x)
    if _cpu_fast(x):
        return _tiled(_lab_to_rgb_tile, x)
    L, a, b = x.unbind(-3)
    fy = (L + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = (fy - b / 200.0).clamp(min=0.0)
    X = _f_inv(fx) * WHITE_D65[0]
    Y = _f_inv(fy)
    Z = _f_inv(fz) * WHITE_D65[2]
    rgb = _xyz_to_linear_rgb(X, Y, Z)
    return _linear_to_srgb(rgb).clamp_(0.0, 1.0)


# --------------------------------------------------------------------------- #
# CPU kernels of rgb_to_lab / lab_to_rgb (float32): the same formulas, evaluated
# on cache-sized tiles of pixels with preallocated buffers, each step in place
# or into a buffer (out=), the 3x3 matrix as fused multiply-adds per channel
# with the pieces' constant offsets folded into its first term, the piecewise
# curves branch-free (no masks / torch.where) and powers as exp(k * log(x)).
# --------------------------------------------------------------------------- #

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


def _cpu_fast(x) -> bool:
    import torch

    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.dim() >= 3
        and x.shape[-3] == 3
        and not (x.requires_grad and torch.is_grad_enabled())
        and not torch.compiler.is_compiling()  # compiled, the plain formulas fuse better
    )


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

    x = _as_float(x)
    L, a, b = x.unbind(-3)
    fy = (L + 16.0) / 116.0
    Y = _f_inv(fy).clamp_(0.0, 1.0)
    X = _f_inv(a / 500.0 + fy).mul_(WHITE_D65[0])
    Z = _f_inv(fy - b / 200.0).mul_(WHITE_D65[2])
    lin = _xyz_to_linear_rgb(X, Y, Z)
    hi = lin.amax(dim=-3)
    lo = lin.amin(dim=-3)
    tiny = 1e-12
    s_hi = torch.where(hi > 1.0, (1.0 - Y) / (hi - Y).clamp_(min=tiny), torch.ones_like(Y))
    s_lo = torch.where(lo < 0.0, Y / (Y - lo).clamp_(min=tiny), torch.ones_like(Y))
    s = torch.minimum(s_hi, s_lo).clamp_(0.0, 1.0).unsqueeze(-3)
    Yc = Y.unsqueeze(-3)
    lin = (lin - Yc).mul_(s).add_(Yc)
    return _linear_to_srgb(lin.clamp_(0.0, 1.0)).clamp_(0.0, 1.0)


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


def gray_to_L(g):
    """L* of the sRGB gray (g, g, g) for gray values g in [0, 1] (any shape)."""
    # the rows of XYZ_FROM_RGB's middle line sum to 1: Y of (g,g,g) is linear(g)
    return 116.0 * _f(_srgb_to_linear(_as_float(g))) - 16.0


def L_to_gray(L):
    """Inverse of :func:`gray_to_L`: the sRGB gray value whose L* is ``L`` (any shape)."""
    return _linear_to_srgb(_f_inv((_as_float(L) + 16.0) / 116.0)).clamp(0.0, 1.0)


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
        lin = _srgb_to_linear(x)
        m = XYZ_FROM_RGB[1]
        y = lin[..., 0] * m[0] + lin[..., 1] * m[1] + lin[..., 2] * m[2]
        return 116.0 * _f(y) - 16.0

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
