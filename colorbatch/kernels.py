"""Fused per-pixel CPU kernels (numba): decoded pixels -> L*, and L* + low-resolution
a*b* -> 8-bit sRGB, each in one pass over the image in row tiles.

The public functions:

- :func:`lstar_from_rgb8` -- L* (float32 H x W, 0..100) of an sRGB image: 8-bit or 16-bit,
  gray (H x W) or colour (H x W x 3), or float in [0, 1]; ``quantized=True`` gives the
  colorizer's uint16 form ``round(L* * 655.35)`` (:func:`lq_from_rgb8`).
- :func:`rgb8_from_lab` -- (H x W x 3) uint8 sRGB from full-resolution L* (float32 or
  the uint16 quantised form) and a*b* at a lower resolution (h x w x 2, any strides):
  bilinear upsampling (``align_corners=False``, as ``torch.nn.functional.interpolate``),
  LAB -> XYZ -> linear sRGB, out-of-gamut colours moved towards the gray of the same
  luminance (L* is kept, as :func:`colorbatch.color.lab_to_rgb_keep_L` does), sRGB gamma
  and quantisation by one table lookup. Optionally writes the upsampled a*b* too.
- :func:`available` -- whether the compiled kernels can run here;
  :func:`warm_up` -- compile (or load from numba's on-disk cache) ahead of the first image.

No full-size float temporary is made beyond the outputs: each output row is computed
from the input row and a few small tables. Compilation is cached on disk
(``cache=True``): only the very first use on a machine pays for it.

Without numba (or with ``COLORBATCH_KERNELS=0``) every function still works: it says so
once through :mod:`logging` and computes with the torch/numpy reference path of
:mod:`colorbatch.color` instead.

In the colorize pipeline (:func:`warm_for_pipeline`, :func:`ready`) the kernels load in
a background thread while the model loads, and the step waits for them before its first
image: every image of every run takes the same path, so an output does not depend on the
size of the run it was made in (the two paths differ by up to one 8-bit level).

Threads: numba's ``workqueue`` layer is chosen (unless ``NUMBA_THREADING_LAYER`` is set),
the one that survives ``fork()`` (DataLoader workers); it is not thread-safe, so parallel
calls hold a lock and a call that finds it taken runs single-threaded instead. In
worker processes (one per core) pass ``parallel=False``.

numba is imported on first use only: importing this module is cheap.
"""
from __future__ import annotations

import logging
import os
import threading

import numpy as np

from colorbatch.kernel_bodies import (  # noqa: F401 - L_SCALE re-exported
    _TILE_PIXELS,
    L_SCALE,
    _compile,
    aa_table,
    _gamma_table,
    _interp_axis,
    _ly_table,
    _tables,
    _xyz_to_rgb_white,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- #
# loading numba (once), the fallback message (once)
# --------------------------------------------------------------------------- #

_STATE: dict = {}  # "nb": the compiled functions, or None where unavailable; "why"; "warned"
_STATE_LOCK = threading.Lock()
_PAR_LOCK = threading.Lock()  # numba's workqueue layer runs one parallel region at a time


def _load():
    """The compiled kernels (a dict), or None where numba cannot be used."""
    if "nb" in _STATE:
        return _STATE["nb"]
    with _STATE_LOCK:
        if "nb" in _STATE:
            return _STATE["nb"]
        nb, why = None, None
        if os.environ.get("COLORBATCH_KERNELS", "").strip().lower() in ("0", "off", "no", "false"):
            why = "COLORBATCH_KERNELS=0"
        else:
            try:
                import numba
            except ImportError as exc:
                why = f"numba is not installed ({exc.__class__.__name__}: {exc}); pip install numba"
            else:
                try:
                    nb = _compile(numba)
                except Exception as exc:  # noqa: BLE001 - a broken install must not stop a batch
                    why = f"numba could not be used ({exc.__class__.__name__}: {exc})"
                    nb = None
        _STATE["why"] = why
        _STATE["nb"] = nb
        return nb




def available() -> bool:
    """True where the compiled kernels run now (numba importable, not disabled, not
    being loaded by :func:`warm_up_in_background`); where they cannot run at all, says
    so once (as the functions do) so that a caller that takes its own reference path
    instead need not."""
    return not _fallback()


def fallback_reason() -> str | None:
    """Why the reference path is used instead of the kernels (None: it is not)."""
    _load()
    return _STATE.get("why")


def _fallback():
    """Say once per process that the reference path is used; returns True where it is
    (silently while a background warm-up runs: the caller does not wait for it)."""
    if warming():
        return True
    if _load() is not None:
        return False
    if not _STATE.get("warned"):
        _STATE["warned"] = True
        log.warning("fast colour kernels unavailable: %s; using the slower torch path", _STATE.get("why"))
    return True


def _run(par_fn, ser_fn, parallel: bool, pixels: int):
    """Run ``par_fn()`` (holding the parallel lock) or ``ser_fn()``."""
    nb = _STATE["nb"]
    if parallel and pixels >= 2 * _TILE_PIXELS and nb["threads"]() > 1 and _PAR_LOCK.acquire(blocking=False):
        try:
            return par_fn()
        finally:
            _PAR_LOCK.release()
    return ser_fn()


def _rows_per_tile(width: int) -> int:
    return max(1, _TILE_PIXELS // max(1, width))


# --------------------------------------------------------------------------- #
# public API
# --------------------------------------------------------------------------- #


def lstar_from_rgb8(arr, *, quantized: bool = False, out=None, parallel: bool = True) -> np.ndarray:
    """L* of an sRGB image in one pass: ``arr`` is H x W (gray) or H x W x 3 (colour;
    further channels are ignored), uint8, uint16 (16-bit) or float in [0, 1].

    Returns float32 H x W L* (0..100), or with ``quantized=True`` uint16
    ``round(L* * 655.35)`` (the colorizer's compact form). ``out``: an array of that
    dtype and shape to write into.
    """
    arr = np.asarray(arr)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] < 3):
        raise ValueError(f"lstar_from_rgb8 expects H x W or H x W x 3, got shape {arr.shape}")
    dtype = np.uint16 if quantized else np.float32
    H, W = arr.shape[:2]
    if out is None:
        out = np.empty((H, W), dtype=dtype)
    elif out.shape != (H, W) or out.dtype != dtype:
        raise ValueError(f"out must be {np.dtype(dtype).name} {(H, W)}, got {out.dtype} {out.shape}")
    if arr.size == 0:
        return out
    if _fallback():
        out[...] = _lstar_reference(arr, quantized)
        return out
    nb = _STATE["nb"]
    if arr.ndim == 3 and arr.shape[2] > 3:
        arr = arr[..., :3]
    qscale, qbias = (L_SCALE, 0.5) if quantized else (1.0, 0.0)
    rows = _rows_per_tile(W)
    if arr.dtype in (np.uint8, np.uint16):
        ch, gray = _tables(8 if arr.dtype == np.uint8 else 16)
        if arr.ndim == 2:
            _run(lambda: nb["lstar_gray_par"](arr, out, rows, gray, qscale, qbias),
                 lambda: nb["lstar_rows_gray"](arr, out, 0, H, gray, qscale, qbias), parallel, H * W)
        else:
            ly = _ly_table()
            _run(lambda: nb["lstar_rgb_par"](arr, out, rows, ch, ly, qscale, qbias),
                 lambda: nb["lstar_rows_rgb"](arr, out, 0, H, ch, ly, qscale, qbias), parallel, H * W)
    elif np.issubdtype(arr.dtype, np.floating):
        src = arr.astype(np.float32, copy=False)
        if src.ndim == 2:
            src = src[:, :, None]
        ch, gray = _tables(16)
        ly = _ly_table()
        _run(lambda: nb["lstar_float_par"](src, out, rows, ch, ly, gray, qscale, qbias),
             lambda: nb["lstar_rows_float"](src, out, 0, H, ch, ly, gray, qscale, qbias), parallel, H * W)
    else:
        raise ValueError(f"lstar_from_rgb8: unsupported dtype {arr.dtype} (uint8, uint16 or float)")
    return out


def lq_from_rgb8(arr, *, out=None, parallel: bool = True) -> np.ndarray:
    """``lstar_from_rgb8(arr, quantized=True)``: uint16 ``round(L* * 655.35)``."""
    return lstar_from_rgb8(arr, quantized=True, out=out, parallel=parallel)


def rgb8_from_lab(L, ab_lowres, *, ab_scale: float = 1.0, out=None, ab_out=None,
                  parallel: bool = True) -> np.ndarray:
    """Final 8-bit sRGB (H x W x 3 uint8) from full-resolution L* and low-resolution a*b*.

    ``L``: H x W float32 L* (0..100), or uint16 quantised ``L* * 655.35``.
    ``ab_lowres``: h x w x 2 a*b* (any strides: ``pred.permute(1, 2, 0).numpy()`` of a
    network output is fine), multiplied by ``ab_scale`` (128 for the network's a*b*/128).
    ``ab_out``: optional H x W x 2 float32 array that receives the upsampled a*b*.
    """
    L = np.asarray(L)
    ab = np.asarray(ab_lowres)
    if L.ndim != 2 or ab.ndim != 3 or ab.shape[2] != 2 or ab.shape[0] < 1 or ab.shape[1] < 1:
        raise ValueError(f"rgb8_from_lab expects L (H x W) and a*b* (h x w x 2), got {L.shape} and {ab.shape}")
    H, W = L.shape
    if out is None:
        out = np.empty((H, W, 3), dtype=np.uint8)
    elif out.shape != (H, W, 3) or out.dtype != np.uint8:
        raise ValueError(f"out must be uint8 {(H, W, 3)}, got {out.dtype} {out.shape}")
    if ab_out is not None and (ab_out.shape != (H, W, 2) or ab_out.dtype != np.float32):
        raise ValueError(f"ab_out must be float32 {(H, W, 2)}, got {ab_out.dtype} {ab_out.shape}")
    if L.size == 0:
        return out
    if _fallback():
        _compose_reference(L, ab, float(ab_scale), out, ab_out)
        return out
    nb = _STATE["nb"]
    if L.dtype == np.uint16:
        lscale = 1.0 / L_SCALE
    else:
        L = L.astype(np.float32, copy=False)
        lscale = 1.0
    ab = ab.astype(np.float32, copy=False)
    h, w = ab.shape[:2]
    x0, x1, wx = _interp_axis(w, W)
    y0, y1, wy = _interp_axis(h, H)
    m = _xyz_to_rgb_white()
    gamma = _gamma_table()
    want = ab_out is not None
    abo = ab_out if want else np.empty((0, 0, 2), dtype=np.float32)
    rows = _rows_per_tile(W)
    s = float(ab_scale)
    _run(lambda: nb["compose_par"](L, lscale, ab, s, x0, x1, wx, y0, y1, wy, m, gamma, out, abo, want, rows),
         lambda: nb["compose_rows"](L, lscale, ab, s, x0, x1, wx, y0, y1, wy, m, gamma, out, abo, want, 0, H),
         parallel, H * W)
    return out


def l01_resize_width(Lq, n_out: int):
    """Quantised L* (H x W uint16) -> H x ``n_out`` float32 L*/100, the width pass of the
    network input's antialiased resize in one pass (the weights of
    :func:`colorbatch.kernel_bodies.aa_weights`); None where the kernels do not run (the
    caller takes its numpy path, which gives the same to float rounding)."""
    if _fallback():
        return None
    Lq = np.ascontiguousarray(Lq, dtype=np.uint16)
    lo, cnt, wts = aa_table(Lq.shape[1], int(n_out))
    out = np.empty((Lq.shape[0], int(n_out)), dtype=np.float32)
    _STATE["nb"]["resize_cols_u16"](Lq, np.float32(100.0 * L_SCALE), lo, cnt, wts, out)
    return out


def _readonly(arr):
    arr.setflags(write=False)  # decoded images are read-only arrays: another numba type
    return arr


def warm_up() -> bool:
    """Compile the kernels for the pipeline's input types (or load them from numba's
    cache): read-only 8-bit gray and colour pixels, quantised L* with C-ordered a*b*.
    Returns whether the kernels can run here."""
    if _load() is None:
        return False
    for px in (np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.uint8)):
        lstar_from_rgb8(_readonly(px), quantized=True, parallel=False)
    ab = np.zeros((1, 1, 2), np.float32)
    rgb8_from_lab(np.zeros((2, 2), np.uint16), ab, parallel=False)
    l01_resize_width(np.zeros((2, 4), np.uint16), 2)
    big = np.zeros((2 * _TILE_PIXELS // 256, 256), np.uint16)  # large enough to run in parallel
    rgb8_from_lab(big, ab)
    lstar_from_rgb8(_readonly(np.zeros(big.shape + (3,), np.uint8)), quantized=True)
    return True


# --------------------------------------------------------------------------- #
# warming up in the background (start-up: loading numba overlaps torch and the model)
# --------------------------------------------------------------------------- #

_WARM: dict = {"thread": None, "running": False, "wanted": False}


def ready() -> bool:
    """True where the kernels are loaded and may be used now. Never waits: callers on a
    pipeline's path take the reference path otherwise. Where a pipeline asked for the
    kernels (:func:`warm_for_pipeline`), the first call starts loading them in the
    background (after the step has forked its first workers, which keep the reference
    path; later workers inherit the kernels)."""
    if _STATE.get("nb") is not None and not warming():
        return True
    if _WARM["wanted"] and _WARM["thread"] is None:
        warm_up_in_background()
    return False


def warm_for_pipeline() -> None:
    """A pipeline (the colorize step) will need the kernels: start loading them in the
    background now (it overlaps loading the model); the step calls :func:`wait_warm`
    before its first image, so every image of every run takes the same path (outputs
    must not depend on the size of the run: the reference path differs by up to one
    8-bit level). Loading costs 1-2 s of CPU on 2 cores, once per process."""
    _WARM["wanted"] = True
    warm_up_in_background()


def warm_up_in_background() -> None:
    """Start :func:`warm_up` in a thread (once per process) and return at once.

    While it runs, the public functions take the reference path instead of waiting
    (a one-image run need not pay for loading numba); afterwards they use the kernels.
    Fork worker processes only after :func:`wait_warm`: a child forked meanwhile uses
    the reference path. The thread is joined at exit."""
    if _WARM["thread"] is not None or "nb" in _STATE:
        return
    with _STATE_LOCK:
        if _WARM["thread"] is not None or "nb" in _STATE:
            return
        _WARM["running"] = True
        t = _WARM["thread"] = threading.Thread(target=_warm_quietly, name="colorbatch-kernels", daemon=True)
    import atexit

    atexit.register(wait_warm, 120.0)  # never leave numba mid-compile at interpreter exit
    t.start()


def _warm_quietly() -> None:
    try:
        warm_up()
    except Exception as exc:  # noqa: BLE001 - the reference path stays
        log.debug("warming the kernels failed: %s", exc)
    finally:
        _WARM["running"] = False
    _fallback()  # where numba cannot be used: said once, here


def warming() -> bool:
    """True while a background warm-up runs (from any other thread)."""
    t = _WARM["thread"]
    return _WARM["running"] and t is not threading.current_thread()


def wait_warm(timeout: float | None = None) -> None:
    """Wait for a background warm-up (if any) to finish."""
    t = _WARM["thread"]
    if t is not None and t is not threading.current_thread() and t.is_alive():
        t.join(timeout)


def _after_fork_in_child() -> None:
    """A forked child: fresh locks; if numba was being loaded at the fork, this process
    keeps the reference path (the loading thread does not exist here)."""
    global _STATE_LOCK, _PAR_LOCK
    _STATE_LOCK = threading.Lock()
    _PAR_LOCK = threading.Lock()
    _WARM["wanted"] = False  # a child never starts loading numba itself
    if _WARM["running"]:
        _WARM["running"] = False
        _STATE.update(nb=None, why="the process was forked while the kernels were loading", warned=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------------- #
# the reference path (without numba): colorbatch.color's torch/numpy functions
# --------------------------------------------------------------------------- #


def _lstar_reference(arr, quantized: bool) -> np.ndarray:
    from colorbatch import color

    if arr.ndim == 3:
        arr = arr[..., :3]
    if arr.dtype == np.uint8 and quantized:
        return color.Lq_from_u8(np.ascontiguousarray(arr))
    if arr.dtype == np.uint8:
        x = arr / np.float32(255.0)
    elif arr.dtype == np.uint16:
        x = arr / np.float32(65535.0)
    else:
        x = np.clip(arr.astype(np.float32), 0.0, 1.0)
    L = color.gray_to_L_np(x) if x.ndim == 2 else color.rgb_to_L_np(x)
    if quantized:
        return np.rint(np.clip(L, 0.0, 100.0) * L_SCALE).astype(np.uint16)
    return L


def _compose_reference(L, ab, ab_scale: float, out, ab_out) -> None:
    """Row tiles through torch: bilinear upsampling (align_corners=False), then
    :func:`colorbatch.color.lab_to_srgb8_keep_L`."""
    import torch
    import torch.nn.functional as F

    from colorbatch.color import lab_to_srgb8_keep_L

    H, W = L.shape
    with torch.inference_mode():
        t = torch.from_numpy(np.ascontiguousarray(ab, dtype=np.float32)).permute(2, 0, 1) * ab_scale
        h = t.shape[1]
        if t.shape[2] != W:
            t = F.interpolate(t[None], size=(h, W), mode="bilinear", align_corners=False)[0]
        y0, y1, wy = _interp_axis(h, H)
        rows = max(1, (1 << 20) // max(1, W))
        for r0 in range(0, H, rows):
            r1 = min(H, r0 + rows)
            a0 = t.index_select(1, torch.from_numpy(y0[r0:r1]).long())
            a1 = t.index_select(1, torch.from_numpy(y1[r0:r1]).long())
            up = a0 + (a1 - a0) * torch.from_numpy(wy[r0:r1]).view(1, -1, 1)
            if L.dtype == np.uint16:
                Lt = torch.from_numpy(L[r0:r1].astype(np.float32)) / L_SCALE
            else:
                Lt = torch.from_numpy(np.ascontiguousarray(L[r0:r1], dtype=np.float32))
            out[r0:r1] = lab_to_srgb8_keep_L(Lt, up[0], up[1]).numpy()
            if ab_out is not None:
                ab_out[r0:r1] = up.permute(1, 2, 0).numpy()


def _reset_for_tests() -> None:
    """Forget whether numba was found (tests hide it with monkeypatch)."""
    with _STATE_LOCK:
        layer = _STATE.get("layer_set")
        _STATE.clear()
        _WARM.update(thread=None, running=False, wanted=False)
        if layer:
            _STATE["layer_set"] = True

