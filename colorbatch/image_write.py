"""Atomic writing of images (PNG, JPEG, WebP, TIFF) with provenance metadata, and reading that metadata back."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from colorbatch.errors import ColorbatchError

#: what ``write_image`` can write: name -> (Pillow format, suffix)
WRITE_FORMATS = {
    "png": ("PNG", ".png"),
    "jpg": ("JPEG", ".jpg"),
    "jpeg": ("JPEG", ".jpg"),
    "webp": ("WEBP", ".webp"),
    "tif": ("TIFF", ".tif"),
    "tiff": ("TIFF", ".tiff"),
}


def format_for(path: Path, fmt: str | None = None) -> str:
    """The Pillow format for ``fmt`` or, when None, for the suffix of ``path``."""
    key = (fmt or Path(path).suffix.lstrip(".")).lower()
    if key not in WRITE_FORMATS:
        raise ColorbatchError(
            f"cannot write {key or 'files without a suffix'!r} images; use one of png, jpg, webp, tiff"
        )
    return WRITE_FORMATS[key][0]


def _to_uint8(array) -> np.ndarray:
    arr = np.asarray(array)
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating):
            arr = np.clip(np.rint(np.nan_to_num(arr) * 255.0), 0, 255).astype(np.uint8)
        else:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise ValueError(f"write_image expects H x W or H x W x 3 pixels, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _exif(metadata: dict | None) -> bytes:
    """The EXIF block (``Exif\\0\\0`` + TIFF data) JPEG and WebP outputs carry: Software =
    colorbatch's version, ImageDescription = the provenance as JSON."""
    from PIL import Image

    from colorbatch import __version__

    exif = Image.Exif()
    exif[0x0131] = f"colorbatch {__version__}"
    if metadata:
        exif[0x010E] = json.dumps(metadata, default=str, sort_keys=True)
    return exif.tobytes()


def jpeg_written_as(path, array, fmt: str | None) -> bool:
    """Whether :func:`write_image` writes ``array`` to ``path`` as a JPEG whose pixels are
    ``array`` itself (uint8 H x W x 3, no conversion): then a JPEG of the same pixels and
    quality encoded elsewhere (on the GPU) stands in for its encoding, with the same
    EXIF (:func:`write_encoded_jpeg`)."""
    try:
        if format_for(Path(path), fmt) != "JPEG":
            return False
    except ColorbatchError:
        return False
    arr = np.asarray(array) if array is not None else None
    return arr is not None and arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] == 3


def with_exif(jpeg: bytes, metadata: dict | None) -> bytes:
    """A JPEG file's bytes with the EXIF block :func:`write_image` writes (an APP1 segment
    after the SOI marker and a JFIF APP0 segment, where Pillow puts it). Raises ValueError
    for bytes that are not a JPEG or an EXIF block too big for one segment."""
    payload = _exif(metadata)
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI marker)")
    if len(payload) + 2 > 0xFFFF:
        raise ValueError("EXIF block too big for one APP1 segment")
    at = 2
    if jpeg[2:4] == b"\xff\xe0":  # JFIF APP0 first, as Pillow writes it
        at = 4 + int.from_bytes(jpeg[4:6], "big")
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:at] + app1 + jpeg[at:]


def write_encoded_jpeg(path, jpeg: bytes, *, metadata: dict | None = None) -> Path:
    """Write an already encoded JPEG (a GPU's) as :func:`write_image` writes one: with its
    EXIF provenance (:func:`with_exif`), atomically."""
    from colorbatch.atomic import atomic_write_bytes

    return atomic_write_bytes(Path(path), with_exif(bytes(jpeg), metadata), fsync=True)


def write_image(
    path,
    array,
    *,
    fmt: str | None = None,
    metadata: dict | None = None,
    quality: int = 95,
) -> Path:
    """Write ``array`` (uint8 H x W or H x W x 3; floats in [0, 1] are scaled) to ``path``.

    Atomic: the image goes to a temporary file in the same folder, which then
    replaces ``path``. ``metadata`` (JSON-able) is stored as PNG text chunks, or
    as the EXIF/TIFF ImageDescription (JPEG, WebP, TIFF) with Software set to
    colorbatch's version. Returns ``path``.
    """
    from PIL import Image, PngImagePlugin

    from colorbatch import __version__

    path = Path(path)
    pil_format = format_for(path, fmt)
    arr = _to_uint8(array)
    im = Image.fromarray(arr, mode=None)
    software = f"colorbatch {__version__}"
    description = json.dumps(metadata, default=str, sort_keys=True) if metadata else ""
    kwargs: dict[str, Any] = {}
    if pil_format == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", software)
        for key, value in (metadata or {}).items():
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a name that is not UTF-8: JSON escapes read back to it
                text = json.dumps(value, default=str)
            info.add_itxt(f"colorbatch:{key}", text)
        # zlib level 2: measured on a 2 MP photo, 1.6x faster than 4 (and 4x faster than
        # the default 6) for files ~10% larger; level 1 is no faster
        kwargs.update(pnginfo=info, optimize=False, compress_level=2)
    elif pil_format in ("JPEG", "WEBP"):
        kwargs.update(exif=_exif(metadata), quality=int(quality))
        if pil_format == "JPEG":
            kwargs.update(optimize=False)
    elif pil_format == "TIFF":
        tiffinfo = {305: software}
        if description:
            tiffinfo[270] = description
        kwargs.update(tiffinfo=tiffinfo, compression="tiff_deflate")

    from colorbatch.atomic import atomic_write

    atomic_write(path, lambda tmp: im.save(tmp, format=pil_format, **kwargs), fsync=True)
    return path


def read_metadata(path) -> dict:
    """The provenance ``write_image`` stored in ``path`` (empty dict when none)."""
    from PIL import Image

    with Image.open(path) as im:
        out: dict[str, Any] = {}
        text = getattr(im, "text", None) or {}
        for key, value in text.items():
            if key.startswith("colorbatch:"):
                try:
                    out[key[len("colorbatch:") :]] = json.loads(value)
                except ValueError:
                    out[key[len("colorbatch:") :]] = value
        if not out:
            desc = None
            if im.format == "TIFF":
                desc = im.tag_v2.get(270)
            else:
                desc = im.getexif().get(0x010E)
            if desc:
                try:
                    out = json.loads(desc)
                except ValueError:
                    out = {"description": desc}
        return out
