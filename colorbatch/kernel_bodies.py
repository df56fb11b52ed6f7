"""The bodies of the fused per-pixel kernels (plain Python that numba compiles) and their
tables; :mod:`colorbatch.kernels` is the public face (dispatch, fallback, warm-up).

The functions here are written for numba (loops over rows and pixels, no numpy calls that
allocate per pixel); :func:`_compile` compiles them in this module's namespace (the
parallel drivers call the row functions and ``prange`` as globals). numba is not imported
here: the caller passes it in.
"""
from __future__ import annotations

import functools
import os

import numpy as np

_LAYER_SET: list = []  # numba's threading layer chosen once per process

L_SCALE = 655.35  # L* (0..100) -> uint16, as in the colorizer

# CIE constants as in scikit-image (and colorbatch.color)
_XYZ_FROM_RGB = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPS = 0.008856
_KAPPA = 7.787
_F_EPS = 0.2068966
_SRGB_THR = 0.04045
_LIN_THR = 0.0031308

_Y_INTERVALS = 8192  # L*(Y) table with linear interpolation: error < 1e-3 L*
_GAMMA_N = 65536  # linear -> sRGB 8-bit table (nearest entry): within 0.05 of a code
_TILE_PIXELS = 1 << 15  # pixels per parallel tile (a few rows of a photo)


# --------------------------------------------------------------------------- #
# tables (numpy, float64 maths, built once)
# --------------------------------------------------------------------------- #


def _srgb_to_linear(c):
    c = np.asarray(c, dtype=np.float64)
    return np.where(c > _SRGB_THR, ((np.maximum(c, _SRGB_THR) + 0.055) / 1.055) ** 2.4, c / 12.92)


def _linear_to_srgb(v):
    v = np.asarray(v, dtype=np.float64)
    return np.where(v > _LIN_THR, 1.055 * np.maximum(v, _LIN_THR) ** (1 / 2.4) - 0.055, 12.92 * v)


def _lstar_of_y(y):
    y = np.asarray(y, dtype=np.float64)
    f = np.where(y > _EPS, np.cbrt(np.maximum(y, _EPS)), _KAPPA * y + 16.0 / 116.0)
    return 116.0 * f - 16.0


_TABLES: dict = {}


def _tables(bits: int):
    """For ``bits``-bit codes: the (3, 2**bits) table of each channel's contribution to
    the luminance Y, and the table of L* of the gray (c, c, c)."""
    t = _TABLES.get(bits)
    if t is None:
        n = 1 << bits
        lin = _srgb_to_linear(np.arange(n) / (n - 1))
        ch = np.stack([lin * _XYZ_FROM_RGB[1][c] for c in range(3)]).astype(np.float32)
        gray = _lstar_of_y(lin).astype(np.float32)
        t = _TABLES[bits] = (ch, gray)
    return t


def _ly_table():
    t = _TABLES.get("ly")
    if t is None:
        y = np.arange(_Y_INTERVALS + 2) / _Y_INTERVALS  # one spare entry past Y = 1
        t = _TABLES["ly"] = _lstar_of_y(y).astype(np.float32)
    return t


def _gamma_table():
    t = _TABLES.get("gamma")
    if t is None:
        v = np.arange(_GAMMA_N) / (_GAMMA_N - 1)
        t = _TABLES["gamma"] = np.clip(np.rint(_linear_to_srgb(v) * 255.0), 0, 255).astype(np.uint8)
    return t


def _xyz_to_rgb_white():
    """XYZ -> linear sRGB with the white point folded in (applied to X/Xn, Y, Z/Zn)."""
    return (np.linalg.inv(_XYZ_FROM_RGB) * _WHITE[None, :]).astype(np.float64)


def _interp_axis(n_in: int, n_out: int):
    """Bilinear source indices and weights along one axis, ``align_corners=False``, as
    torch computes them: src = (i + 0.5) * n_in / n_out - 0.5, clamped at 0."""
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.where(i0 < n_in - 1, i0 + 1, i0)
    w = np.clip(src - i0, 0.0, 1.0).astype(np.float32)
    return i0.astype(np.int32), i1.astype(np.int32), w


@functools.lru_cache(maxsize=64)
def aa_weights(n_in: int, n_out: int) -> tuple[tuple[int, np.ndarray], ...]:
    """Per output index, (first input index, weights) of torch's antialiased bilinear
    resize (``F.interpolate(..., mode="bilinear", antialias=True, align_corners=False)``,
    PIL's triangle filter): support ``scale`` when shrinking, 1 when enlarging."""
    scale = n_in / n_out
    support = scale if scale >= 1.0 else 1.0
    invscale = 1.0 / scale if scale >= 1.0 else 1.0
    out = []
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), n_in)
        x = (np.arange(lo, hi, dtype=np.float64) - center + 0.5) * invscale
        w = np.clip(1.0 - np.abs(x), 0.0, None)
        total = w.sum()
        w = (w / total if total else w).astype(np.float32)
        w.setflags(write=False)  # shared by every caller (cached per size)
        out.append((lo, w))
    return tuple(out)


@functools.lru_cache(maxsize=64)
def aa_table(n_in: int, n_out: int):
    """:func:`aa_weights` as arrays for the kernel: first index (int64), count (int64) and
    the weights zero-padded to the longest (n_out x k float32)."""
    rows = aa_weights(n_in, n_out)
    k = max(1, max(len(w) for _, w in rows))
    lo = np.array([r[0] for r in rows], dtype=np.int64)
    cnt = np.array([len(r[1]) for r in rows], dtype=np.int64)
    wts = np.zeros((n_out, k), dtype=np.float32)
    for i, (_, w) in enumerate(rows):
        wts[i, : len(w)] = w
    for a in (lo, cnt, wts):
        a.setflags(write=False)
    return lo, cnt, wts


# --------------------------------------------------------------------------- #
# the kernels, as plain Python; compiled by _load() (the _nb_* names are bound
# there to the compiled row functions the drivers call)
# --------------------------------------------------------------------------- #


def _py_lstar_rows_rgb(src, out, r0, r1, ch, ly, qscale, qbias):
    """Rows [r0, r1) of L* of integer sRGB codes: Y as the sum of three table entries
    (linearisation and the matrix row folded in), L*(Y) interpolated in ``ly``."""
    n = ly.shape[0] - 2
    fn = np.float32(n)
    qs = np.float32(qscale)
    qb = np.float32(qbias)
    c0 = ch[0]
    c1 = ch[1]
    c2 = ch[2]
    for i in range(r0, r1):
        for j in range(src.shape[1]):
            y = (c0[src[i, j, 0]] + c1[src[i, j, 1]] + c2[src[i, j, 2]]) * fn
            k = min(np.int32(y), n)
            lo = ly[k]
            out[i, j] = (lo + (y - np.float32(k)) * (ly[k + 1] - lo)) * qs + qb


def _py_lstar_rows_gray(src, out, r0, r1, gray, qscale, qbias):
    qs = np.float32(qscale)
    qb = np.float32(qbias)
    for i in range(r0, r1):
        for j in range(src.shape[1]):
            out[i, j] = gray[src[i, j]] * qs + qb


def _py_lstar_rows_float(src, out, r0, r1, ch, ly, gray, qscale, qbias):
    """Float input in [0, 1] (H x W x 1 gray or H x W x 3 colour): each row is first
    turned into the nearest 16-bit codes (a row-sized buffer), then as above."""
    W = src.shape[1]
    color = src.shape[2] == 3
    codes = np.empty((1, W, src.shape[2]), dtype=np.uint16)
    top = np.float32(65535.0)
    for i in range(r0, r1):
        for j in range(W):
            for c in range(codes.shape[2]):
                v = np.float32(src[i, j, c]) * top + np.float32(0.5)
                v = v if v > np.float32(0.0) else np.float32(0.0)  # NaN -> 0
                codes[0, j, c] = np.uint16(v if v < top else top)
        if color:
            _nb_lstar_rows_rgb(codes, out[i:i + 1], 0, 1, ch, ly, qscale, qbias)  # noqa: F821
        else:
            _nb_lstar_rows_gray(codes[:, :, 0], out[i:i + 1], 0, 1, gray, qscale, qbias)  # noqa: F821


def _py_lstar_rgb_par(src, out, rows, ch, ly, qscale, qbias):
    h = src.shape[0]
    for t in prange((h + rows - 1) // rows):  # noqa: F821 - numba.prange, bound by _load
        _nb_lstar_rows_rgb(src, out, t * rows, min(h, t * rows + rows), ch, ly, qscale, qbias)  # noqa: F821


def _py_lstar_gray_par(src, out, rows, gray, qscale, qbias):
    h = src.shape[0]
    for t in prange((h + rows - 1) // rows):  # noqa: F821
        _nb_lstar_rows_gray(src, out, t * rows, min(h, t * rows + rows), gray, qscale, qbias)  # noqa: F821


def _py_lstar_float_par(src, out, rows, ch, ly, gray, qscale, qbias):
    h = src.shape[0]
    for t in prange((h + rows - 1) // rows):  # noqa: F821
        _nb_lstar_rows_float(src, out, t * rows, min(h, t * rows + rows), ch, ly, gray, qscale, qbias)  # noqa: F821


def _py_compose_rows(L, lscale, ab, ab_scale, x0, x1, wx, y0, y1, wy, m, gamma, rgb, ab_out, want_ab, r0, r1):
    """Rows [r0, r1) of the output. ab is (h, w, 2); x0/x1/wx and y0/y1/wy the bilinear
    indices and weights along each axis; m the 3x3 XYZ -> linear sRGB matrix with the
    white point folded in; gamma the linear -> 8-bit sRGB table.

    Per output row, in float32 and in row-sized buffers: (1) the two low-resolution
    rows blended vertically (a*b* scaled to a*/500 and b*/200, non-finite values -> 0);
    (2) blended horizontally; (3) per pixel, branch-free so that it vectorises: f^-1,
    the matrix, the gamut scale towards (Y, Y, Y), the clamp, the table index;
    (4) the gamma table lookups into the output.
    """
    f32 = np.float32
    w = ab.shape[1]
    W = L.shape[1]
    low = np.empty((2, w), dtype=np.float32)
    A = np.empty(W, dtype=np.float32)
    B = np.empty(W, dtype=np.float32)
    idx = np.empty((3, W), dtype=np.int32)
    gmax = f32(gamma.shape[0] - 1)
    m00, m01, m02 = f32(m[0, 0]), f32(m[0, 1]), f32(m[0, 2])
    m10, m11, m12 = f32(m[1, 0]), f32(m[1, 1]), f32(m[1, 2])
    m20, m21, m22 = f32(m[2, 0]), f32(m[2, 1]), f32(m[2, 2])
    fe = f32(0.2068966)  # f(eps): where f^-1 changes piece
    ik = f32(1.0 / 7.787)
    c16 = f32(16.0)
    i116 = f32(1.0 / 116.0)
    sa = f32(ab_scale / 500.0)
    sb = f32(ab_scale / 200.0)
    ls = f32(lscale)
    one = f32(1.0)
    zero = f32(0.0)
    tiny = f32(1e-12)
    half = f32(0.5)
    big = f32(1e4)
    for i in range(r0, r1):
        ya = y0[i]
        yb = y1[i]
        t = wy[i]
        for k in range(w):
            a0 = ab[ya, k, 0]
            b0 = ab[ya, k, 1]
            a = (a0 + t * (ab[yb, k, 0] - a0)) * sa
            b = (b0 + t * (ab[yb, k, 1] - b0)) * sb
            low[0, k] = a if abs(a) < big else zero  # NaN, inf -> 0 (gray)
            low[1, k] = b if abs(b) < big else zero
        for j in range(W):
            xa = x0[j]
            xb = x1[j]
            s = wx[j]
            A[j] = low[0, xa] + s * (low[0, xb] - low[0, xa])
            B[j] = low[1, xa] + s * (low[1, xb] - low[1, xa])
        if want_ab:
            for j in range(W):
                ab_out[i, j, 0] = A[j] * f32(500.0)
                ab_out[i, j, 1] = B[j] * f32(200.0)
        for j in range(W):
            Lv = f32(L[i, j]) * ls
            Lv = Lv if abs(Lv) < big else zero
            fy = (Lv + c16) * i116
            fx = fy + A[j]
            fz = fy - B[j]
            # f^-1, both pieces: max(t, fe)^3 + (min(t, fe) - fe) / kappa
            c = max(fy, fe)
            Y = min(max(c * c * c + (min(fy, fe) - fe) * ik, zero), one)
            c = max(fx, fe)
            X = c * c * c + (min(fx, fe) - fe) * ik
            c = max(fz, fe)
            Z = c * c * c + (min(fz, fe) - fe) * ik
            r = m00 * X + m01 * Y + m02 * Z
            g = m10 * X + m11 * Y + m12 * Z
            bl = m20 * X + m21 * Y + m22 * Z
            # Y is a convex combination of r, g, b (min <= Y <= max): both ratios are
            # >= 1 for a colour in gamut, so s = 1 there
            hi = max(r, max(g, bl))
            lo = min(r, min(g, bl))
            s = min(one, min((one - Y) / max(hi - Y, tiny), Y / max(Y - lo, tiny)))
            s = max(s, zero)
            r = Y + (r - Y) * s
            g = Y + (g - Y) * s
            bl = Y + (bl - Y) * s
            idx[0, j] = np.int32(min(max(r, zero), one) * gmax + half)
            idx[1, j] = np.int32(min(max(g, zero), one) * gmax + half)
            idx[2, j] = np.int32(min(max(bl, zero), one) * gmax + half)
        for j in range(W):
            rgb[i, j, 0] = gamma[idx[0, j]]
            rgb[i, j, 1] = gamma[idx[1, j]]
            rgb[i, j, 2] = gamma[idx[2, j]]


def _py_compose_par(L, lscale, ab, ab_scale, x0, x1, wx, y0, y1, wy, m, gamma, rgb, ab_out, want_ab, rows):
    h = L.shape[0]
    for t in prange((h + rows - 1) // rows):  # noqa: F821
        _nb_compose_rows(L, lscale, ab, ab_scale, x0, x1, wx, y0, y1, wy, m, gamma, rgb, ab_out, want_ab,  # noqa: F821
                         t * rows, min(h, t * rows + rows))


def _py_resize_cols_u16(src, scale, lo, cnt, wts, out):
    """The width pass of the antialiased resize on quantised L* (uint16), as L*/100:
    out[y, i] = sum_j wts[i, j] * (src[y, lo[i] + j] / scale)."""
    h = src.shape[0]
    n = out.shape[1]
    for y in range(h):
        for i in range(n):
            acc = np.float32(0.0)
            b = lo[i]
            for j in range(cnt[i]):
                acc += wts[i, j] * (np.float32(src[y, b + j]) / scale)
            out[y, i] = acc


def _compile(numba):
    """Compile the kernel bodies of this module with numba (cached on disk) -> a dict of them."""
    if "NUMBA_THREADING_LAYER" not in os.environ and not _LAYER_SET:
        # fork-safe (DataLoader workers fork); GNU OpenMP's layer aborts a forked child
        numba.config.THREADING_LAYER = "workqueue"
        _LAYER_SET.append(True)
    g = globals()
    # no "nnan"/"ninf" in fastmath: the clamps must keep seeing NaN
    opts = dict(cache=True, nogil=True, error_model="numpy", fastmath={"nsz", "arcp", "contract"})
    jit = numba.njit(**opts)
    pjit = numba.njit(parallel=True, **opts)
    g["prange"] = numba.prange
    nb = {}
    for name in ("lstar_rows_rgb", "lstar_rows_gray", "lstar_rows_float", "compose_rows", "resize_cols_u16"):
        nb[name] = g["_nb_" + name] = jit(g["_py_" + name])
    for name in ("lstar_rgb_par", "lstar_gray_par", "lstar_float_par", "compose_par"):
        nb[name] = pjit(g["_py_" + name])
    nb["threads"] = numba.get_num_threads
    return nb
