"""The colorize step's CUDA path (issue 13, deliverable 2): JPEGs decoded on the GPU in
batches (torchvision's nvjpeg decode), L* and the network input made on the device.

Used only with ``--device cuda``: :func:`prepared` stands in for the CPU decoding of a
chunk there, and CPU machines never import this module. A file goes through the GPU
when its header shows a plain JPEG the CPU path would read as it is (8-bit gray or RGB,
one frame, no ICC profile to apply, no EXIF rotation, within the pixel limit); every
other file, and any batch the GPU decoder refuses, goes through the CPU path
(``cpu(items)``, the step's decoding workers), so results match the CPU path up to the
JPEG decoders' rounding. The network input is the same antialiased resize as
:func:`colorbatch.colorizer.resize_L01`. The quantised L* of a file decoded here stays on
the device, and :func:`compose` recombines it there; the 8-bit result comes to the host
through a pinned buffer (a non-blocking copy), and where the output will be a JPEG
(:func:`device_jpeg_quality`) it is also encoded on the device (torchvision's
``encode_jpeg``): the save step then writes those bytes with its EXIF provenance instead of
encoding on the CPU (:class:`colorbatch.item.Encoded`). An encoder that fails makes the
step warn once and leave encoding to the CPU for the rest of the run;
``COLORBATCH_GPU_ENCODE=0`` leaves it to the CPU from the start.

:func:`lq_from_rgb8_tensor` (any device) is the device form of
:func:`colorbatch.kernels.lq_from_rgb8`; tests compare the two on the CPU.
"""
from __future__ import annotations

import numpy as np

from colorbatch.images import L_SCALE

GPU_BATCH = 32  # files per nvjpeg batch
_TABLES: dict = {}


def _switched_off(name: str) -> bool:
    import os

    return os.environ.get(name, "").strip().lower() in ("0", "off", "no", "false")


def encode_wanted() -> bool:
    """Whether JPEG outputs may be encoded on the device (``COLORBATCH_GPU_ENCODE=0``: no)."""
    return not _switched_off("COLORBATCH_GPU_ENCODE")


def wanted(device) -> bool:
    """True for a CUDA device (the only one this path serves) with torchvision's GPU
    JPEG decoder, unless ``COLORBATCH_GPU_DECODE=0``."""
    import torch

    if _switched_off("COLORBATCH_GPU_DECODE"):
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
    _settle(device)
    return decode_jpeg(datas, mode=ImageReadMode.UNCHANGED, device=device)


def _settle(device) -> None:
    """Wait for the work queued on this thread's CUDA stream. torchvision's nvjpeg calls run
    on streams of their own: its decoder has written into freed memory that kernels queued
    on the caller's stream were still reading (pytorch/vision#9606), and its encoder has
    read images before they were complete, from threads other than the one that made them
    (pytorch/vision#8587, #9060)."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.current_stream(device).synchronize()


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
    lq16 = torch.where(Lq > 32767, Lq - 65536, Lq).to(torch.int16)  # uint16 bits, as prepare_item; stays here
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


def device_jpeg_quality(item_id: str, saves) -> int | None:
    """The quality at which to encode ``item_id``'s output on the device: where the save
    steps that follow (``saves``: their options; only save steps may follow, or nothing
    is encoded) write it as a JPEG, at one quality; else None (the CPU encodes)."""
    from colorbatch.outputs import output_suffix

    qualities = {int(o.quality) for o in saves if output_suffix(item_id, o.format).lower() in (".jpg", ".jpeg")}
    return qualities.pop() if len(qualities) == 1 else None


def encode_jpeg_bytes(rgb, quality: int) -> bytes:
    """(H, W, 3) uint8 tensor (on the GPU, or the CPU in tests) -> JPEG file bytes, by
    torchvision's ``encode_jpeg`` (nvjpeg on CUDA)."""
    from torchvision.io import encode_jpeg

    data = encode_jpeg(rgb.permute(2, 0, 1).contiguous(), quality=int(quality))
    return data.cpu().numpy().tobytes()


def compose(Lq, pred, want_ab: bool = False, quality: int | None = None):
    """Recombination of an image whose quantised L* is on the device (``Lq``: (H, W) int16
    holding uint16 bits, as :func:`_prep` leaves it) with its prediction ``pred`` ((2, h, w)
    a*b*/128), as :func:`colorbatch.recombine.compose_full` does on a device, without the
    L* coming back from the host.

    Returns ``(rgb, ab, jpeg)``: uint8 H x W x 3 on the host (pinned memory on CUDA, copied
    without blocking), a*b* H x W x 2 float32 when ``want_ab`` (else None), and with a
    ``quality`` the JPEG bytes encoded on the device, or the exception the encoder raised
    (the caller falls back to the CPU's encoding), else None.
    """
    import torch

    from colorbatch.recombine import device_tiles

    dev = Lq.device
    H, W = Lq.shape
    with torch.inference_mode():
        rgb = torch.empty((H, W, 3), dtype=torch.uint8, device=dev)
        ab_full = np.empty((H, W, 2), dtype=np.float32) if want_ab else None

        def L_rows(y0, y1):
            return Lq[y0:y1].to(torch.int32).bitwise_and_(0xFFFF).float().div_(L_SCALE)

        for y0, y1, tile, ab in device_tiles(L_rows, pred.to(device=dev), H, W):
            rgb[y0:y1] = tile
            if want_ab:
                ab_full[y0:y1] = ab.permute(1, 2, 0).cpu().numpy()
        cuda = dev.type == "cuda"
        host = torch.empty((H, W, 3), dtype=torch.uint8, pin_memory=cuda)
        host.copy_(rgb, non_blocking=cuda)
        jpeg = None
        if quality is not None:
            try:
                _settle(dev)  # rgb complete before nvjpeg's stream reads it
                jpeg = encode_jpeg_bytes(rgb, quality)
            except Exception as exc:  # noqa: BLE001 - the CPU encodes instead
                jpeg = exc
        if cuda:
            torch.cuda.current_stream(dev).synchronize()  # the copy to the host is complete
    return host.numpy(), ab_full, jpeg
