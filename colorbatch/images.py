"""Images for the pipeline: the one decode-to-L* path for items, and the image I/O names in one place.

Reading lives in :mod:`colorbatch.image_read` (with :mod:`colorbatch.image_pixels`),
writing in :mod:`colorbatch.image_write`; this module re-exports their public names.
:func:`decode_L` is the only way a file becomes L*: :func:`decode_item` (float L*
on the item) and the colorizer's workers (quantised L*, 8-bit files by table
lookup) both use it.
"""
from __future__ import annotations

import numpy as np

from colorbatch.errors import ImageReadError
from colorbatch.image_pixels import GRAY_TOLERANCE, Decoded  # noqa: F401 - re-exported
from colorbatch.image_read import (  # noqa: F401 - re-exported
    DEFAULT_MAX_PIXELS,
    max_pixels_limit,
    notes_to_show,
    read_image,
    special_file_kind,
)
from colorbatch.image_write import WRITE_FORMATS, format_for, read_metadata, write_image  # noqa: F401

#: file types the ``load`` step picks up by default
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif")

# --------------------------------------------------------------------------- #
# items and L*
# --------------------------------------------------------------------------- #


L_SCALE = 655.35  # L* (0..100) -> uint16: quantised L*, error < 0.001 L*


def _color():
    from colorbatch import color

    return color


def quantize_L(L: np.ndarray) -> np.ndarray:
    """float L* (0..100) -> uint16 (L * 655.35), row-chunked to keep temporaries small."""
    out = np.empty(L.shape, dtype=np.uint16)
    step = max(1, (1 << 22) // max(1, L.shape[1]))
    for y in range(0, L.shape[0], step):
        out[y : y + step] = np.rint(np.clip(L[y : y + step], 0.0, 100.0) * L_SCALE)
    return out


def decode_L(item, *, quantised: bool = False, max_pixels: int | None = None,
             draft: tuple[int, int] | None = None) -> tuple[np.ndarray, Decoded]:
    """Read ``item``'s file and compute its L*: the one decode-to-L* path -> ``(L, decoded)``.

    ``L`` is float32 L* (0..100), or with ``quantised=True`` uint16 (``L * 655.35``):
    then 8-bit files stay uint8 in ``decoded.pixels`` and L* comes by table lookups
    (:func:`pixels_to_Lq`: the fused kernel, no float image); other files are float32
    in [0, 1]. The decoded notes and
    metadata are copied onto the item. ``max_pixels`` defaults to
    ``item.meta["max_pixels"]`` (the load step's option), then the global limit.
    Raises :class:`ImageReadError`.
    """
    if item.path is None:
        raise ImageReadError(item.id, "the item has no file to read")
    if max_pixels is None:
        max_pixels = item.meta.get("max_pixels")
    dec = read_image(item.path, max_pixels=max_pixels, draft=draft, raw8=quantised)
    note_decoded(item, dec)
    if dec.pixels.dtype == np.uint8 or quantised:  # raw8 (only when quantised): table lookups
        return pixels_to_Lq(dec.pixels), dec
    return _float_L(dec.pixels), dec


def _float_L(pixels: np.ndarray) -> np.ndarray:
    """float32 L* of float pixels in [0, 1] (H x W gray or H x W x 3 colour)."""
    color = _color()
    to_L = color.rgb_to_L_np if pixels.ndim == 3 else color.gray_to_L_np
    return np.asarray(to_L(pixels), dtype=np.float32)


def pixels_to_Lq(pixels: np.ndarray) -> np.ndarray:
    """Quantised L* (uint16) of decoded pixels (uint8, uint16 or float in [0, 1]; gray or
    colour): in one fused pass where :mod:`colorbatch.kernels` are loaded (the colorize
    step loads them for runs of more than one image), single-threaded in child processes
    (DataLoader workers: one per core already); else 8-bit tables or float L*."""
    import multiprocessing

    from colorbatch import kernels

    if kernels.ready():
        return kernels.lq_from_rgb8(pixels, parallel=multiprocessing.parent_process() is None)
    if pixels.dtype == np.uint8:
        return _color().Lq_from_u8(pixels)
    return quantize_L(_float_L(pixels))


def decode_item(item, max_pixels: int | None = None, draft: tuple[int, int] | None = None):
    """Fill ``item.rgb`` (colour inputs), ``item.L`` and ``item.notes`` from its file (:func:`decode_L`).

    A no-op when ``item.L`` is set already. Raises :class:`ImageReadError`.
    """
    if item.L is not None:
        return item
    item.L, dec = decode_L(item, max_pixels=max_pixels, draft=draft)
    item.rgb = dec.pixels if dec.is_color else None
    return item


def note_decoded(item, dec: Decoded) -> None:
    """Copy a decoded image's notes and metadata onto ``item`` (as decode_item does)."""
    for note in dec.notes:
        if note not in item.notes:
            item.notes.append(note)
    item.meta.update({f"input_{k}" if k in ("format", "bits") else k: v for k, v in dec.meta.items()})
    item.meta["input_mode"] = dec.mode


def L_to_gray(L: np.ndarray) -> np.ndarray:
    """L* (0..100) -> uint8 sRGB gray whose L* equals ``L`` (a* = b* = 0)."""
    import torch

    L = np.ascontiguousarray(L, dtype=np.float32)
    with torch.inference_mode():
        g = _color().L_to_gray(torch.from_numpy(L)).numpy()
    return np.clip(np.rint(g * 255.0), 0, 255).astype(np.uint8)

