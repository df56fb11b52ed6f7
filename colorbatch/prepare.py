"""The network's input: L* resized to network size (:func:`resize_L01`, :func:`net_shape`),
batches padded to the encoder's multiple (:func:`pad_batch`), and the work done in
DataLoader worker processes (:func:`prepare_item`: decode an item once, through
:func:`colorbatch.images.decode_L`, into compact shareable pieces).

Used by :class:`colorbatch.colorizer.Colorizer` (which re-exports these names) and the
colorize step. torch is imported lazily.
"""
from __future__ import annotations

import numpy as np

from colorbatch.images import L_SCALE, quantize_L
from colorbatch.kernel_bodies import aa_weights
from colorbatch.recombine import u16_tensor


def net_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """Network resolution for an h x w image: long side = size, aspect kept (>= 1 px)."""
    s = size / max(h, w)
    return max(1, int(round(h * s))), max(1, int(round(w * s)))


def resize_L01(L, shape):
    """L* (H x W numpy float32 or uint16 quantised) -> (1, h, w) float32 tensor L*/100."""
    import torch
    import torch.nn.functional as F

    if L.dtype == np.uint16:
        t = u16_tensor(L)
        scale = 100.0 * L_SCALE
    else:
        t = torch.from_numpy(np.ascontiguousarray(L, dtype=np.float32))
        scale = 100.0
    h, w = t.shape
    out = []
    # row bands keep the float copy small; antialias needs whole columns, so
    # resize width first per band, then height on the narrow result
    th, tw = shape
    step = max(1, (1 << 22) // max(1, w))
    for y in range(0, h, step):
        band = (t[y : y + step].float() / scale)[None, None]  # never in place: t may share the caller's array
        if tw != w:
            band = F.interpolate(band, size=(band.shape[-2], tw), mode="bilinear", antialias=True,
                                 align_corners=False)
        out.append(band)
    x = torch.cat(out, dim=-2)
    if th != h:
        x = F.interpolate(x, size=(th, tw), mode="bilinear", antialias=True, align_corners=False)
    return x[0]


def _resize_axis(x: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    """``x`` (2-D float32) resized along ``axis`` by :func:`colorbatch.kernel_bodies.aa_weights`."""
    n_in = x.shape[axis]
    shape = list(x.shape)
    shape[axis] = n_out
    out = np.empty(shape, dtype=np.float32)
    for i, (lo, w) in enumerate(aa_weights(n_in, n_out)):
        if axis == 1:
            out[:, i] = x[:, lo : lo + len(w)] @ w
        else:
            out[i] = w @ x[lo : lo + len(w)]
    return out


def resize_L01_np(L, shape) -> np.ndarray:
    """:func:`resize_L01` in numpy (no torch): L* (H x W float32, or uint16 quantised) ->
    (1, h, w) float32 L*/100, the same antialiased resize to float rounding. The network
    input of runs on onnxruntime (which never import torch for it)."""
    if L.dtype == np.uint16:
        scale = np.float32(100.0 * L_SCALE)
    else:
        L = np.asarray(L, dtype=np.float32)
        scale = np.float32(100.0)
    h, w = L.shape
    th, tw = shape
    x = None
    if tw != w and L.dtype == np.uint16:
        from colorbatch import kernels

        if kernels.ready():  # the width pass in one compiled pass (the colorize step loads them)
            x = kernels.l01_resize_width(L, tw)
    if x is None:
        step = max(1, (1 << 22) // max(1, w))
        bands = []
        for y in range(0, h, step):
            band = L[y : y + step].astype(np.float32) / scale
            bands.append(_resize_axis(band, tw, 1) if tw != w else band)
        x = np.concatenate(bands, axis=0) if len(bands) > 1 else bands[0]
    if th != h:
        x = _resize_axis(x, th, 0)
    return np.ascontiguousarray(x)[None]


def pad_batch_np(arrays, multiple: int = 32) -> np.ndarray:
    """:func:`pad_batch` in numpy: (1, h, w) arrays -> (B, 1, Hp, Wp) float32, edge-padded."""
    hmax = max(a.shape[-2] for a in arrays)
    wmax = max(a.shape[-1] for a in arrays)
    Hp = -(-hmax // multiple) * multiple
    Wp = -(-wmax // multiple) * multiple
    return np.stack([np.pad(np.asarray(a, dtype=np.float32), ((0, 0), (0, Hp - a.shape[-2]), (0, Wp - a.shape[-1])),
                            mode="edge") for a in arrays])


def pad_batch(tensors, multiple: int = 32):
    """Stack (1, h, w) tensors into (B, 1, Hp, Wp), edge-padded to a common multiple."""
    import torch
    import torch.nn.functional as F

    hmax = max(t.shape[-2] for t in tensors)
    wmax = max(t.shape[-1] for t in tensors)
    Hp = -(-hmax // multiple) * multiple
    Wp = -(-wmax // multiple) * multiple
    out = []
    for t in tensors:
        ph, pw = Hp - t.shape[-2], Wp - t.shape[-1]
        if ph or pw:
            t = F.pad(t[None], (0, pw, 0, ph), mode="replicate")[0]
        out.append(t)
    return torch.stack(out)


def prepare_item(item, size: int, compact: bool = True, want_rgb: bool = True, numpy: bool = False,
                 tensors: bool = True) -> dict:
    """Decode ``item`` (unless item.L is set) and make its network input.

    Returns a dict of compact, shareable pieces: ``small`` (1,h,w) float32
    L*/100 at network size, ``Lq`` full-resolution uint16 L*, ``rgb`` (uint8
    or uint16 H x W x 3, colour inputs only), ``notes``, ``meta``; or
    ``{"error": message}``. With ``compact=False`` (preparation in the main
    process, nothing to send) a colour ground truth stays in ``item.rgb`` as is.
    ``want_rgb=False``: the colour ground truth is dropped (nothing after
    colorize needs it), which saves converting and sending it.
    ``numpy=True`` (runs on onnxruntime): ``small`` comes from :func:`resize_L01_np`, and
    without ``compact`` every piece is a numpy array (torch is not imported); with
    ``compact`` (a DataLoader worker) the pieces are tensors over the same numbers, unless
    ``tensors=False`` (a worker of a process pool, which sends numpy arrays).
    """
    try:
        rgb = None
        if item.L is None:  # the one decode-to-L* path; 8-bit files stay uint8 (L* by table lookup)
            from colorbatch.images import decode_L

            Lq, dec = decode_L(item, quantised=True)
            if dec.is_color and want_rgb:
                if dec.pixels.dtype != np.uint8:
                    item.rgb = dec.pixels
                elif compact:
                    rgb = np.array(dec.pixels)  # writable (shared with the main process)
                else:
                    item.rgb = dec.pixels.astype(np.float32)
                    item.rgb /= 255.0
            del dec
        else:
            L = np.asarray(item.L, dtype=np.float32)
            if L.ndim != 2:
                raise ValueError(f"L* must be H x W, got shape {L.shape}")
            Lq = quantize_L(L)
            del L
        shape = net_shape(*Lq.shape, size)
        small = resize_L01_np(Lq, shape) if numpy else resize_L01(Lq, shape)
        item.L = None
        if item.rgb is not None and not want_rgb:
            item.rgb = None
        if item.rgb is not None and compact:
            r = np.asarray(item.rgb)
            item.rgb = None
            if item.meta.get("input_bits", 8) == 8:
                rgb = np.rint(r * 255.0).astype(np.uint8)
            else:
                rgb = np.rint(r * 65535.0).astype(np.uint16).view(np.int16)
            del r
        Lq = Lq.view(np.int16)
        if (compact and tensors) or not numpy:  # tensors share memory with the main process
            import torch

            Lq = torch.from_numpy(Lq)
            rgb = None if rgb is None else torch.from_numpy(rgb)
            small = torch.from_numpy(small) if isinstance(small, np.ndarray) else small
        return {"small": small, "Lq": Lq, "rgb": rgb, "notes": list(item.notes), "meta": dict(item.meta)}
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - reported per item by the step
        from colorbatch.errors import one_line

        return {"error": one_line(exc)}


def as_numpy(x):
    """A tensor (CPU) or array -> numpy, sharing memory."""
    return x if x is None or isinstance(x, np.ndarray) else x.numpy()


def unpack_L(Lq_tensor) -> np.ndarray:
    """The ``Lq`` of :func:`prepare_item` (tensor or array of int16) -> uint16 L*."""
    return as_numpy(Lq_tensor).view(np.uint16)


def unpack_rgb(rgb_tensor) -> np.ndarray | None:
    if rgb_tensor is None:
        return None
    arr = as_numpy(rgb_tensor)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return arr.view(np.uint16).astype(np.float32) / 65535.0
