"""Small thumbnails for the gallery, from in-memory arrays or from files.

Three roles per item: ``gray`` (the L* the model saw, shown as sRGB gray),
``color`` (the colorized output) and ``truth`` (the colour original, when the
input was in colour). File names are a hash of the item id, so they are safe in
URLs and stable between rebuilds. ``thumbs/index.json`` records which
thumbnails exist for which item, so that ``colorbatch report`` can rebuild the
page from what the ``report`` step made during the run; it also keeps the
colour hints of those items (see ``colorbatch_report.hints``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from colorbatch.api import atomic_write_bytes
from colorbatch_report import hints as hint_marks

ROLES = ("gray", "color", "truth")
INDEX = "index.json"


def _np():
    import numpy as np

    return np


def _subsample(arr, size: int):
    """Cheap stride subsampling to about twice the target size first."""
    h, w = arr.shape[:2]
    step = max(1, int(max(h, w) // (2 * size)))
    return arr[::step, ::step] if step > 1 else arr


def to_uint8(arr):
    np = _np()
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        with np.errstate(invalid="ignore"):  # NaN -> 0
            return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.dtype == np.uint16:
        return (arr >> 8).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _srgb_encode(y):
    np = _np()
    y = np.clip(y, 0.0, 1.0)
    return np.where(y <= 0.0031308, 12.92 * y, 1.055 * np.power(y, 1 / 2.4) - 0.055)


_LUTS: dict[str, object] = {}
L_STEPS = 20  # L* look-up table resolution: 1/20 of a unit (gray error < 0.1/255)


def _lut(name: str):
    lut = _LUTS.get(name)
    if lut is None:
        np = _np()
        if name == "L":  # L* (0..100, in 1/L_STEPS) -> uint8 sRGB gray of that lightness
            L = np.arange(100 * L_STEPS + 1, dtype=np.float64) / L_STEPS
            fy = (L + 16.0) / 116.0
            lut = to_uint8(_srgb_encode(np.where(L > 8.0, fy**3, L / 903.3)))
        else:  # "lin": uint8 sRGB -> linear light
            c = np.arange(256, dtype=np.float64) / 255.0
            lut = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)
        _LUTS[name] = lut
    return lut


def gray_from_L(L):
    """L* (0..100) as the sRGB gray of the same lightness, uint8."""
    np = _np()
    with np.errstate(invalid="ignore"):
        idx = np.clip(np.asarray(L, dtype=np.float32) * L_STEPS + 0.5, 0, 100 * L_STEPS).astype(np.intp)
    return _lut("L")[idx]


def gray_from_rgb(rgb8):
    """An sRGB uint8 image as the gray of the same L* (what the model sees)."""
    np = _np()
    lin = _lut("lin")[rgb8[..., :3]]
    y = lin[..., 0] * 0.2126 + lin[..., 1] * 0.7152 + lin[..., 2] * 0.0722
    return to_uint8(_srgb_encode(y))


def looks_colour(rgb8) -> bool:
    """True when the channels differ visibly (not gray stored as RGB)."""
    np = _np()
    if rgb8.ndim != 3 or rgb8.shape[2] < 3:
        return False
    a = rgb8[..., :3].astype(np.int16)
    spread = np.abs(a[..., 0] - a[..., 1]) + np.abs(a[..., 1] - a[..., 2])
    return float(spread.mean()) > 1.5


def thumb_name(item: str, role: str, fmt: str) -> str:
    digest = hashlib.sha1(item.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{digest}-{role}.{'jpg' if fmt == 'jpeg' else fmt}"


class Thumbnails:
    """Writes thumbnails into ``folder`` and keeps the index of what exists."""

    def __init__(self, folder: Path, size: int = 192, fmt: str = "jpeg", quality: int = 80):
        self.folder = Path(folder)
        self.size = int(size)
        self.fmt = fmt
        self.quality = quality
        self.index: dict[str, dict[str, str]] = {}
        self.gallery: list[str] | None = None  # set by the report step: its sample, in order
        self.pending: dict[str, dict[str, bytes]] = {}  # encoded, not yet written
        self.hints: dict[str, dict] = {}  # item -> hint record (hints.clean), for the cards

    # ---- index --------------------------------------------------------------
    def load_index(self) -> None:
        try:
            data = json.loads((self.folder / INDEX).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(data, dict):
            return
        if isinstance(data.get("hints"), dict):  # kept whatever the thumbnail settings
            for item, record in data["hints"].items():
                record = hint_marks.clean(record)
                if record is not None:
                    self.hints[item] = record
        if data.get("size") != self.size or data.get("format") != self.fmt:
            return  # different settings: rebuild as needed
        if isinstance(data.get("gallery"), list):
            self.gallery = [g for g in data["gallery"] if isinstance(g, str)]
        items = data.get("items")
        if isinstance(items, dict):
            for item, roles in items.items():
                if isinstance(roles, dict):
                    kept = {r: f for r, f in roles.items() if r in ROLES and isinstance(f, str)
                            and (self.folder / f).is_file()}
                    if kept:
                        self.index[item] = kept

    def save_index(self) -> None:
        data = {"size": self.size, "format": self.fmt, "items": self.index}
        if self.gallery is not None:
            data["gallery"] = self.gallery
        if self.hints:
            data["hints"] = self.hints
        atomic_write_bytes(self.folder / INDEX, json.dumps(data).encode("utf-8"))

    def forget(self, item: str) -> None:
        self.pending.pop(item, None)
        self.hints.pop(item, None)
        for name in self.index.pop(item, {}).values():
            try:
                (self.folder / name).unlink()
            except OSError:
                pass

    # ---- writing ------------------------------------------------------------
    def flush(self) -> None:
        """Write the thumbnails kept in memory (see ``add_arrays``) to files."""
        for item, roles in list(self.pending.items()):
            for role, data in roles.items():
                name = thumb_name(item, role, self.fmt)
                atomic_write_bytes(self.folder / name, data)
                self.index.setdefault(item, {})[role] = name
        self.pending.clear()

    def _write(self, item: str, role: str, arr, defer: bool = False) -> str:
        from PIL import Image

        img = Image.fromarray(arr)
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        img.thumbnail((self.size, self.size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        import io

        buf = io.BytesIO()
        if self.fmt == "webp":
            img.save(buf, "WEBP", quality=self.quality, method=2)
        else:
            img.save(buf, "JPEG", quality=self.quality, optimize=False)
        name = thumb_name(item, role, self.fmt)
        if defer:
            self.pending.setdefault(item, {})[role] = buf.getvalue()
            return name
        atomic_write_bytes(self.folder / name, buf.getvalue())
        self.index.setdefault(item, {})[role] = name
        return name

    def add_arrays(self, item: str, *, L=None, rgb=None, output=None) -> None:
        """Thumbnails from an in-flight item's arrays (any may be None).

        They are encoded now but kept in memory (~2 kB each) until ``flush()``,
        so items that a sample later drops never touch the disk.
        """
        np = _np()
        truth = to_uint8(_subsample(np.asarray(rgb), self.size))[..., :3] if rgb is not None else None
        if L is not None:
            self._write(item, "gray", gray_from_L(_subsample(np.asarray(L), self.size)), defer=True)
        elif truth is not None:
            self._write(item, "gray", gray_from_rgb(truth), defer=True)
        if output is not None:
            self._write(item, "color", to_uint8(_subsample(np.asarray(output), self.size)), defer=True)
        if truth is not None and looks_colour(truth):  # a gray frame decoded as RGB is no truth
            self._write(item, "truth", truth, defer=True)

    def _open(self, path: Path):
        from PIL import Image, ImageOps

        img = Image.open(path)
        try:
            img.draft("RGB", (self.size * 2, self.size * 2))
        except Exception:  # noqa: BLE001 - draft is an optimisation only
            pass
        img = ImageOps.exif_transpose(img)
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = _np().asarray(img, dtype=_np().float32)
            img = Image.fromarray(to_uint8(arr / max(float(arr.max()), 1.0)))
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            back = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(back, rgba)
        img = img.convert("RGB")
        img.thumbnail((self.size * 2, self.size * 2), Image.Resampling.BILINEAR)
        return _np().asarray(img)

    def add_files(self, item: str, input_path: str | None, output_path: str | None) -> dict[str, str]:
        """Thumbnails from a saved output and its input file (colour input = truth)."""
        have = self.index.get(item, {})
        if input_path and not ({"gray"} <= set(have)):
            try:
                arr = self._open(Path(input_path))
            except Exception:  # noqa: BLE001 - an unreadable file just has no thumbnail
                arr = None
            if arr is not None:
                self._write(item, "gray", gray_from_rgb(arr))
                if looks_colour(arr):
                    self._write(item, "truth", arr)
        if output_path and "color" not in have:
            try:
                arr = self._open(Path(output_path))
            except Exception:  # noqa: BLE001
                arr = None
            if arr is not None:
                self._write(item, "color", arr)
        return self.index.get(item, {})


def existing(index: dict[str, dict[str, str]], folder: Path, item: str) -> dict[str, Any]:
    roles = index.get(item) or {}
    return {r: n for r, n in roles.items() if (folder / n).is_file()}
