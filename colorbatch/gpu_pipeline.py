"""The colorize step's CUDA path (issue 13, deliverable 2): JPEGs decoded on the GPU in
batches (torchvision's nvjpeg decode), L* and the network input made on the device.

Used only with ``--device cuda``: :func:`prepared` stands in for the CPU decoding of a
chunk there, and CPU machines never import this module. A file goes through the GPU
when its header shows a plain JPEG the CPU path would read as it is (8-bit gray or RGB,
one frame, no ICC profile to apply, no EXIF rotation, within the pixel limit); every
other file, and any batch the GPU decoder refuses, goes through the CPU path
(``cpu(items)``, the step's decoding workers), so results match the CPU path up to the
JPEG decoders' rounding. The network input is the same antialiased resize as
:func:`colorbatch.colorizer.resize_L01`; recombination then runs on the device
(:func:`colorbatch.recombine.compose_full`).

:func:`lq_from_rgb8_tensor` (any device) is the device form of
:func:`colorbatch.kernels.lq_from_rgb8`; tests compare the two on the CPU.
"""
from __future__ import annotations

import numpy as np

from colorbatch.images import L_SCALE

GPU_BATCH = 32  # files per nvjpeg batch
_TABLES: dict = {}


def wanted(device) -> bool:
    """True for a CUDA device (the only one this path serves) with torchvision's GPU
    JPEG decoder, unless ``COLORBATCH_GPU_DECODE=0``."""
    import os

    import torch

    if os.environ.get("COLORBATCH_GPU_DECODE", "").strip().lower() in ("0", "off", "no", "false"):
        return False
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError:
        return False
    return torch.device(device).type == "cuda"


def _tables(device):
    """(3, 256) float32: each 8-bit code's contribution to the luminance Y, per channel;
    (256,) the linear value of a gray code (Y of (c, c, c))."""
    import torch

    key = str(device)
    t = _TABLES.get(key)
    if t is None:
        c = np.arange(256) / 255.0
        lin = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
        rows = np.array([0.212671, 0.715160, 0.072169])[:, None] * lin[None, :]
        t = _TABLES[key] = (torch.tensor(rows, dtype=torch.float32, device=device),
                            torch.tensor(lin, dtype=torch.float32, device=device))
    return t


def lq_from_rgb8_tensor(img):
    """(C, H, W) uint8 sRGB (C = 1 gray or 3 colour) on any device -> (H, W) int32
    quantised L* (``round(L* * 655.35)``) on that device."""
    import torch

    ch, gray = _tables(img.device)
    idx = img.long()
    if img.shape[0] >= 3:
        Y = ch[0][idx[0]] + ch[1][idx[1]] + ch[2][idx[2]]
    else:
        Y = gray[idx[0]]
    Y = Y.clamp_(0.0, 1.0)
    f = torch.where(Y > 0.008856, Y.clamp(min=0.008856).pow(1.0 / 3.0), Y * 7.787 + 16.0 / 116.0)
    L = (f * 116.0 - 16.0).clamp_(0.0, 100.0)
    return torch.round(L * L_SCALE).to(torch.int32)


def _L01_small(Lq, shape):
    """Quantised L* (H, W) int32 on the device -> (1, h, w) L*/100 at the network size
    (width then height, bilinear with antialias, as resize_L01)."""
    import torch.nn.functional as F

    x = (Lq.float() / (100.0 * L_SCALE))[None, None]
    th, tw = shape
    if tw != x.shape[-1]:
        x = F.interpolate(x, size=(x.shape[-2], tw), mode="bilinear", antialias=True, align_corners=False)
    if th != x.shape[-2]:
        x = F.interpolate(x, size=(th, tw), mode="bilinear", antialias=True, align_corners=False)
    return x[0]


def jpeg_header(item) -> dict | None:
    """The meta the CPU path would record for ``item``, where its file can go through the
    GPU decoder unchanged (see the module's note); else None."""
    from PIL import Image

    from colorbatch.images import max_pixels_limit

    path = item.path
    if item.L is not None or path is None or path.suffix.lower() not in (".jpg", ".jpeg"):
        return None
    try:
        with Image.open(path) as im:
            w, h = im.size
            limit = max_pixels_limit(item.meta.get("max_pixels"))
            if (im.format != "JPEG" or im.mode not in ("L", "RGB") or getattr(im, "n_frames", 1) != 1
                    or im.info.get("icc_profile") or int(im.getexif().get(0x0112, 1) or 1) != 1
                    or (limit and w * h > limit) or not w or not h):
                return None
            return {"format": "JPEG", "file_mode": im.mode, "width": w, "height": h, "mode": im.mode}
    except Exception:  # noqa: BLE001 - the CPU path reports what is wrong with the file
        return None


def _decode(items, device):
    """nvjpeg decode of ``items``' files -> list of (C, H, W) uint8 tensors on ``device``."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    datas = [torch.frombuffer(bytearray(it.path.read_bytes()), dtype=torch.uint8) for it in items]
    return decode_jpeg(datas, mode=ImageReadMode.UNCHANGED, device=device)


def _prep(item, head: dict, img, size: int, want_rgb: bool) -> dict:
    """The dict :func:`colorbatch.colorizer.prepare_item` makes, from a decoded image."""
    import torch

    from colorbatch.colorizer import net_shape

    notes = list(item.notes)
    meta = dict(item.meta)
    meta.update(input_format=head["format"], file_mode=head["file_mode"], width=head["width"],
                height=head["height"], input_mode=head["mode"])
    color = img.shape[0] >= 3
    if color and int((img[0].short() - img[1:3].short()).abs().max()) <= 1:
        meta["near_gray"] = True
        notes.append("colour file whose channels are equal: a gray image stored as colour")
    Lq = lq_from_rgb8_tensor(img)
    small = _L01_small(Lq, net_shape(*Lq.shape, size))
    lq16 = torch.where(Lq > 32767, Lq - 65536, Lq).to(torch.int16).cpu()  # uint16 bits, as prepare_item
    rgb = img[:3].permute(1, 2, 0).contiguous().cpu() if color and want_rgb else None
    item.notes[:] = notes
    item.meta.update(meta)
    return {"small": small, "Lq": lq16, "rgb": rgb, "notes": notes, "meta": meta}


def prepared(chunk, size: int, device, want_rgb: bool, cpu, batch: int = GPU_BATCH):
    """Yield ``(item, prepared dict)`` for ``chunk`` in order: plain JPEGs decoded on the
    device in batches, the other items by ``cpu(items)`` (an iterator of the same pairs)."""
    heads = [jpeg_header(it) for it in chunk]
    rest = [it for it, h in zip(chunk, heads) if h is None]
    cpu_iter = iter(cpu(rest)) if rest else iter(())
    on_gpu = [(it, h) for it, h in zip(chunk, heads) if h is not None]
    done: dict[int, dict] = {}
    pos = 0
    for item, head in zip(chunk, heads):
        if head is None:
            yield next(cpu_iter)
            continue
        if id(item) not in done:  # decode the next batch of GPU items
            part = on_gpu[pos : pos + batch]
            pos += len(part)
            done.update(_batch(part, size, device, want_rgb, cpu))
        yield item, done.pop(id(item))


def _batch(part, size, device, want_rgb, cpu) -> dict:
    import torch

    items = [it for it, _ in part]
    try:
        with torch.inference_mode():
            imgs = _decode(items, device)
            return {id(it): _prep(it, h, img, size, want_rgb) for (it, h), img in zip(part, imgs)}
    except Exception:  # noqa: BLE001 - a file nvjpeg refuses: this batch by the CPU path
        return {id(it): prep for it, prep in cpu(items)}
