"""From a decoded Pillow image to pixel arrays: modes, bit depths, ICC profiles, alpha, 16-bit TIFF; the Decoded result."""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from colorbatch.errors import ImageReadError

GRAY_TOLERANCE = 1.0 / 255.0


@dataclass
class Decoded:
    """A decoded image.

    pixels:   float32 in [0, 1]; H x W (gray) or H x W x 3 (sRGB).
    is_color: True when ``pixels`` has three channels.
    mode:     the Pillow mode of the file (``"P"``, ``"I;16"``, ``"CMYK"`` ...).
    notes:    things the user may want to know ("animated: first of 4 frames used").
    meta:     ``width``, ``height``, ``format``, ``bits`` and flags such as
              ``near_gray`` (a colour file whose channels are equal within 1/255),
              ``icc`` (the profile that was converted) and ``exif_orientation``.
    """

    pixels: np.ndarray
    is_color: bool
    mode: str
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) after EXIF rotation."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])



def _scale_numeric(arr: np.ndarray, notes: list[str]) -> np.ndarray:
    """Map a 32-bit integer or float array to [0, 1], saying what was assumed."""
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        notes.append("non-finite values set to 0")
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    lo = float(arr.min()) if arr.size else 0.0
    hi = float(arr.max()) if arr.size else 0.0
    if lo >= 0.0 and hi <= 1.0:
        out = arr
    elif lo >= 0.0 and hi <= 255.0:
        out = arr / 255.0
        notes.append("values read as 8-bit range 0..255")
    elif lo >= 0.0 and hi <= 65535.0:
        out = arr / 65535.0
        notes.append("values read as 16-bit range 0..65535")
    else:
        span = hi - lo
        out = (arr - lo) / span if span > 0 else np.zeros_like(arr)
        notes.append(f"values rescaled from [{lo:g}, {hi:g}]")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


_SRGB_PROFILE = None


def _srgb_profile():
    global _SRGB_PROFILE
    if _SRGB_PROFILE is None:
        from PIL import ImageCms

        _SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return _SRGB_PROFILE


def _apply_icc(im, icc: bytes, notes: list[str], meta: dict):
    """Convert an 8-bit RGB / CMYK / L image with an embedded profile to sRGB."""
    from PIL import ImageCms

    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        desc = (ImageCms.getProfileDescription(src) or "").strip()
    except Exception:  # noqa: BLE001 - a broken profile must not lose the image
        notes.append("embedded ICC profile unreadable; assumed sRGB")
        return im
    if "srgb" in desc.lower().replace(" ", "").replace("-", ""):
        return im  # already sRGB (or a variant close enough)
    space = (src.profile.xcolor_space or "").strip().upper()
    expected = {"RGB": "RGB", "CMYK": "CMYK", "L": "GRAY"}.get(im.mode)
    if expected is None or space != expected:
        notes.append(f"embedded ICC profile ({space or '?'}) does not match mode {im.mode}; ignored")
        return im
    try:
        out = ImageCms.profileToProfile(
            im, src, _srgb_profile(), outputMode="RGB", renderingIntent=ImageCms.Intent.PERCEPTUAL
        )
    except Exception as exc:  # noqa: BLE001
        notes.append(f"ICC conversion failed ({exc}); colours used as stored")
        return im
    meta["icc"] = desc or "embedded profile"
    notes.append(f"converted from ICC profile {desc!r} to sRGB" if desc else "converted to sRGB")
    if im.mode == "L":
        return out.convert("L")
    return out


def _composite_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha.astype(np.float32)
    if color.ndim == 3:
        a = a[..., None]
    return color * a + (1.0 - a)


def tiff_rgb16(im) -> bool:
    try:
        bits = im.tag_v2.get(258)
    except AttributeError:
        return False
    return bool(bits) and isinstance(bits, tuple) and len(bits) >= 3 and all(b == 16 for b in bits[:3])


def png_bit_depth(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            head = fh.read(25)
    except OSError:
        return 0
    return head[24] if len(head) == 25 and head[12:16] == b"IHDR" else 0


_ORIENT_OPS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def read_tiff16_rgb(path: Path, orientation: int, notes: list[str]) -> np.ndarray | None:
    try:
        import tifffile
    except ImportError:  # pragma: no cover - scikit-image brings it
        notes.append("16-bit colour TIFF read at 8-bit precision (tifffile not installed)")
        return None
    try:
        arr = tifffile.imread(str(path), key=0)
    except Exception:  # noqa: BLE001 - fall back to Pillow's 8-bit reading
        return None
    if arr.ndim != 3 or arr.shape[-1] < 3 or arr.dtype != np.uint16:
        return None
    arr = arr[..., :4]
    px = arr[..., :3].astype(np.float32) / 65535.0
    if arr.shape[-1] == 4:
        px = _composite_white(px, arr[..., 3].astype(np.float32) / 65535.0)
        notes.append("transparency composited over white")
    op = _ORIENT_OPS.get(orientation)
    if op is not None:
        px = op(px)
    return np.ascontiguousarray(px, dtype=np.float32)



def to_array(im, icc, notes: list[str], meta: dict, path: Path, raw8: bool = False):
    """Pillow image -> float32 array in [0, 1] and the file's mode."""
    mode = im.mode
    meta.setdefault("bits", 8)
    if mode == "1":
        return np.asarray(im.convert("L"), dtype=np.float32) / 255.0, mode
    if mode.startswith("I;16"):
        meta["bits"] = 16
        arr = np.asarray(im)
        if arr.dtype.byteorder not in ("=", "|"):
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if icc:
            notes.append("ICC profile of a 16-bit gray image ignored")
        return arr.astype(np.float32) / 65535.0, mode
    if mode in ("I", "F"):
        meta["bits"] = 32
        if icc:
            notes.append(f"ICC profile of a mode {mode} image ignored")
        return _scale_numeric(np.asarray(im), notes), mode
    if mode == "P" or mode == "PA":
        has_alpha = "transparency" in im.info or mode == "PA" or (
            im.palette is not None and im.palette.mode == "RGBA"
        )
        im = im.convert("RGBA" if has_alpha else "RGB")
        arr = np.asarray(im)
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            im = im.convert("LA" if has_alpha else "L")  # a gray palette: exactly gray
    elif mode in ("La", "RGBa"):
        im = im.convert(mode[0] + "A" if mode == "La" else "RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA", "CMYK"):
        try:
            im = im.convert("RGB")
            notes.append(f"mode {mode} converted to RGB")
        except Exception as exc:  # noqa: BLE001
            raise ImageReadError(path, f"unsupported image mode {mode} ({exc})") from None

    alpha = None
    if im.mode in ("LA", "RGBA"):
        alpha = np.asarray(im.getchannel("A"), dtype=np.float32) / 255.0
        im = im.convert(im.mode[:-1])
    if icc and im.mode in ("RGB", "CMYK", "L"):
        im = _apply_icc(im, icc, notes, meta)
    if im.mode == "CMYK":
        im = im.convert("RGB")
        notes.append("CMYK converted to RGB without a profile")
    if raw8 and alpha is None and im.mode in ("L", "RGB"):
        return np.asarray(im), mode  # uint8, as decoded
    arr = np.asarray(im, dtype=np.float32) / 255.0
    if alpha is not None:
        if float(alpha.min()) < 1.0:
            notes.append("transparency composited over white")
        arr = _composite_white(arr, alpha)
    return arr, mode


def _near_gray_u8(pixels: np.ndarray) -> bool:
    """uint8 H x W x 3: are the channels equal within one code (= GRAY_TOLERANCE)?"""
    r = pixels[..., 0]
    for c in (1, 2):
        other = pixels[..., c]
        # a sparse sample first: a colour photo is rejected without a full pass
        for a, b in ((r[::61, ::7], other[::61, ::7]), (r, other)):
            d = a - b  # uint8, wraps: |a - b| <= 1  <=>  (a - b + 1) mod 256 <= 2
            d += 1
            if int(d.max()) > 2:
                return False
    return True


def finish_pixels(pixels: np.ndarray, mode: str, notes, meta, path: Path) -> Decoded:
    if pixels.dtype == np.uint8:  # raw8
        pixels = np.ascontiguousarray(pixels)
        is_color = pixels.ndim == 3
        if is_color and _near_gray_u8(pixels):
            meta["near_gray"] = True
            notes.append("colour file whose channels are equal: a gray image stored as colour")
        meta["width"], meta["height"] = int(pixels.shape[1]), int(pixels.shape[0])
        return Decoded(pixels=pixels, is_color=is_color, mode=mode, notes=notes, meta=meta)
    pixels = np.ascontiguousarray(np.clip(pixels, 0.0, 1.0), dtype=np.float32)
    is_color = pixels.ndim == 3
    if is_color:
        diff = max(
            float(np.abs(pixels[..., 0] - pixels[..., 1]).max()),
            float(np.abs(pixels[..., 0] - pixels[..., 2]).max()),
        )
        if diff <= GRAY_TOLERANCE + 1e-6:
            meta["near_gray"] = True
            notes.append("colour file whose channels are equal: a gray image stored as colour")
    meta["width"], meta["height"] = int(pixels.shape[1]), int(pixels.shape[0])
    return Decoded(pixels=pixels, is_color=is_color, mode=mode, notes=notes, meta=meta)

