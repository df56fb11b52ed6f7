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


def prepare_item(item, size: int, compact: bool = True, want_rgb: bool = True) -> dict:
    """Decode ``item`` (unless item.L is set) and make its network input.

    Returns a dict of compact, shareable pieces: ``small`` (1,h,w) float32
    L*/100 at network size, ``Lq`` full-resolution uint16 L*, ``rgb`` (uint8
    or uint16 H x W x 3, colour inputs only), ``notes``, ``meta``; or
    ``{"error": message}``. With ``compact=False`` (preparation in the main
    process, nothing to send) a colour ground truth stays in ``item.rgb`` as is.
    ``want_rgb=False``: the colour ground truth is dropped (nothing after
    colorize needs it), which saves converting and sending it.
    """
    import torch

    try:
        rgb = None
        if item.L is None:  # the one decode-to-L* path; 8-bit files stay uint8 (L* by table lookup)
            from colorbatch.images import decode_L

            Lq, dec = decode_L(item, quantised=True)
            if dec.is_color and want_rgb:
                if dec.pixels.dtype != np.uint8:
                    item.rgb = dec.pixels
                elif compact:
                    rgb = torch.from_numpy(np.array(dec.pixels))  # writable (shared with the main process)
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
        small = resize_L01(Lq, net_shape(*Lq.shape, size))
        item.L = None
        if item.rgb is not None and not want_rgb:
            item.rgb = None
        if item.rgb is not None and compact:
            r = np.asarray(item.rgb)
            item.rgb = None
            if item.meta.get("input_bits", 8) == 8:
                rgb = torch.from_numpy(np.rint(r * 255.0).astype(np.uint8))
            else:
                rgb = torch.from_numpy(np.rint(r * 65535.0).astype(np.uint16).view(np.int16))
            del r
        return {"small": small, "Lq": torch.from_numpy(Lq.view(np.int16)), "rgb": rgb,
                "notes": list(item.notes), "meta": dict(item.meta)}
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - reported per item by the step
        from colorbatch.errors import one_line

        return {"error": one_line(exc)}


def unpack_L(Lq_tensor) -> np.ndarray:
    return Lq_tensor.numpy().view(np.uint16)


def unpack_rgb(rgb_tensor) -> np.ndarray | None:
    if rgb_tensor is None:
        return None
    arr = rgb_tensor.numpy()
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return arr.view(np.uint16).astype(np.float32) / 65535.0
