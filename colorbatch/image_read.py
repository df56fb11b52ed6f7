"""Robust reading of image files: whatever an archive holds, as float32 (or 8-bit) pixels, or one-line errors.

:func:`read_image` turns a file into a :class:`~colorbatch.image_pixels.Decoded`:
EXIF orientation applied, palette / alpha / CMYK / 16-bit / 32-bit integer and
float modes handled, embedded ICC profiles converted to sRGB, transparency
composited over white, the first frame of animated files. Every problem (zero
bytes, truncated, corrupt, not an image, too many pixels, a FIFO) raises
:class:`~colorbatch.errors.ImageReadError` with the path and a one-line reason.
"""
from __future__ import annotations

import os
import re
import stat
import warnings
from pathlib import Path
from typing import Any

from colorbatch.errors import ColorbatchError, ImageReadError

from colorbatch.image_pixels import Decoded, finish_pixels, png_bit_depth, read_tiff16_rgb, tiff_rgb16, to_array

#: the default decompression-bomb guard, in pixels (override: COLORBATCH_MAX_PIXELS)
DEFAULT_MAX_PIXELS = 250_000_000

GRAY_TOLERANCE = 1.0 / 255.0


def max_pixels_limit(value: int | None = None) -> int:
    """The pixel limit in force: ``value``, else ``$COLORBATCH_MAX_PIXELS``, else the default.

    ``0`` means no limit.
    """
    if value is not None:
        return int(value)
    env = os.environ.get("COLORBATCH_MAX_PIXELS", "").strip()
    if env:
        try:
            value = int(float(env))
        except (ValueError, OverflowError):  # text, nan, inf
            value = -1
        if value < 0:
            raise ColorbatchError(
                f"COLORBATCH_MAX_PIXELS={env!r} is not a pixel count; set it to a whole number "
                "such as 400000000, or 0 for no limit"
            )
        return value
    return DEFAULT_MAX_PIXELS



# --------------------------------------------------------------------------- #
# reading
# --------------------------------------------------------------------------- #


#: notes about routine conversions, not shown (the rest are: something was not used or reinterpreted)
_ROUTINE_NOTES = re.compile(
    r"^(EXIF orientation \d+ applied|converted from ICC profile .* to sRGB|converted to sRGB|"
    r"transparency composited over white|mode \S+ converted to RGB|colour file whose channels are equal)"
)


def notes_to_show(notes) -> list[str]:
    """The notes a user should see: frames or pages not used, values rescaled, profiles ignored ..."""
    return [n for n in notes if not _ROUTINE_NOTES.match(n)]


def special_file_kind(mode: int) -> str:
    """What a file that is not a regular file is: ``a named pipe (FIFO)``, ``a device`` ..."""
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _sniff_reason(path: Path) -> str:
    """Why Pillow could not identify ``path``: text, empty, or unknown bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(2048)
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"
    if not head:
        return "empty file (0 bytes)"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*", b"BM")) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    ):
        return "corrupt image: the header is damaged"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(ch.isprintable() or ch in "\r\n\t" for ch in text[:512]):
        return "not an image: the file holds text"
    return "not an image, or a format Pillow cannot read"


def _open_error(path: Path, exc: BaseException) -> ImageReadError:
    if isinstance(exc, FileNotFoundError):
        return ImageReadError(path, "file not found (deleted, or a broken symbolic link)")
    if isinstance(exc, IsADirectoryError):
        return ImageReadError(path, "is a folder, not an image file")
    if isinstance(exc, PermissionError):
        return ImageReadError(path, "permission denied; check the file's permissions")
    if isinstance(exc, OSError) and exc.errno is not None and exc.strerror:
        return ImageReadError(path, f"cannot read file ({exc.strerror})")
    return ImageReadError(path, _sniff_reason(path))


def _bomb_error(path: Path, pixels: int, limit: int, dims: tuple[int, int] | None = None) -> ImageReadError:
    size = f"{dims[0]}x{dims[1]} = " if dims else ""

    def mp(n: int) -> str:
        return f"{n / 1e6:.1f} megapixels" if n >= 1_000_000 else f"{n} pixels"

    return ImageReadError(
        path,
        f"{size}{mp(pixels)} exceeds the limit of {mp(limit)} "
        f"(a guard against decompression bombs); if the file is trusted, raise it with "
        f"COLORBATCH_MAX_PIXELS={max(pixels, limit) + 1} or the load step's max_pixels option "
        "(0 = no limit)",
    )


def _pil_bomb_pixels(exc: BaseException) -> int:
    import re

    m = re.search(r"\((\d+) pixels\)", str(exc))
    return int(m.group(1)) if m else 0



def read_image(
    path, *, max_pixels: int | None = None, draft: tuple[int, int] | None = None, raw8: bool = False
) -> Decoded:
    """Decode ``path`` into float32 pixels in [0, 1] (see :class:`Decoded`).

    ``max_pixels`` caps width x height (default: :func:`max_pixels_limit`; 0 = no
    limit). ``draft=(w, h)`` lets JPEG decode at a reduced scale that is still at
    least that size (much faster when only a small version is needed).
    ``raw8=True``: an image that ends up as plain 8-bit gray or RGB (no alpha to
    composite) keeps its uint8 pixels instead of float32 (no conversion pass;
    for callers that compute L* by table lookup); other images are float32.
    Raises :class:`ImageReadError` naming the path and the reason.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    limit = max_pixels_limit(max_pixels)
    notes: list[str] = []
    meta: dict[str, Any] = {}
    try:
        st = path.stat()
    except OSError as exc:
        raise _open_error(path, exc) from None
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):  # checked before any open: opening a FIFO would block
        raise ImageReadError(path, f"{special_file_kind(st.st_mode)}, not an image file; colorbatch reads regular files only")
    if st.st_size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")

    # Pillow's own guard is process-wide and errors at twice its limit; keep it
    # at least as high as ours so that ours, with its clearer message, decides.
    if Image.MAX_IMAGE_PIXELS is not None and (limit == 0 or Image.MAX_IMAGE_PIXELS < limit):
        Image.MAX_IMAGE_PIXELS = None if limit == 0 else limit

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise _bomb_error(path, _pil_bomb_pixels(exc), limit or 0) from None
    except (UnidentifiedImageError, SyntaxError, ValueError, EOFError) as exc:
        raise _open_error(path, exc) from None
    except OSError as exc:
        raise _open_error(path, exc) from None

    with im:
        width, height = im.size
        if limit and width * height > limit:
            raise _bomb_error(path, width * height, limit, (width, height))
        if width == 0 or height == 0:
            raise ImageReadError(path, f"image has no pixels ({width}x{height})")
        meta.update(format=im.format, file_mode=im.mode)
        frames = int(getattr(im, "n_frames", 1) or 1)
        if frames > 1:
            if im.format == "TIFF":
                notes.append(f"multi-page ({frames} pages): first page used")
            elif im.format != "MPO":  # a camera JPEG with previews: the first image is the photo
                notes.append(f"animated ({frames} frames): first frame used")
            meta["frames"] = frames
            im.seek(0)
        if draft is not None and im.format == "JPEG":
            try:
                im.draft(im.mode, (int(draft[0]), int(draft[1])))
            except Exception:  # noqa: BLE001 - draft is only an optimisation
                pass
        icc = im.info.get("icc_profile")
        orientation = 1
        try:
            orientation = int(im.getexif().get(0x0112, 1) or 1)
        except Exception:  # noqa: BLE001
            notes.append("EXIF data unreadable; orientation ignored")

        if im.format == "PNG" and im.mode in ("RGB", "RGBA") and png_bit_depth(path) == 16:
            notes.append("16-bit colour PNG read at 8-bit precision")
        if im.format == "TIFF" and tiff_rgb16(im):
            px16 = read_tiff16_rgb(path, orientation, notes)
            if px16 is not None:
                meta["bits"] = 16
                return finish_pixels(px16, im.mode, notes, meta, path)

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im.load()
        except Image.DecompressionBombError:
            raise _bomb_error(path, width * height, limit, (width, height)) from None
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as exc:
            text = str(exc).strip() or type(exc).__name__
            if "truncated" in text.lower():
                reason = f"truncated image data ({text}); the file is incomplete"
            else:
                reason = f"corrupt image data ({text})"
            raise ImageReadError(path, reason) from None
        except MemoryError:
            raise ImageReadError(path, "not enough memory to decode this image") from None

        if orientation != 1:
            try:
                im = ImageOps.exif_transpose(im)
                meta["exif_orientation"] = orientation
                notes.append(f"EXIF orientation {orientation} applied")
            except Exception:  # noqa: BLE001
                notes.append("EXIF orientation could not be applied; image used as stored")
        return finish_pixels(*to_array(im, icc, notes, meta, path, raw8), notes, meta, path)

