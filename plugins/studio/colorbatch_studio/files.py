"""The studio's files: the folder's images, paths confined to FOLDER and OUT, cached thumbnails.

Every path the page names is a path *relative* to FOLDER (``in``) or OUT (``out``);
:func:`safe_join` refuses absolute paths, ``..`` parts, NUL bytes and anything whose
real path (symbolic links followed) lies outside its root. The listing follows the
load step's rules for a folder (image extensions, recursive, hidden files and folders
skipped, sorted by path parts), so the page shows the images ``colorbatch colorize
FOLDER`` would colorize. Thumbnails are made on first request and cached in
``OUT/.studio/thumbs`` (keyed by path, size and mtime), so a large folder opens at
once and a second visit is free. Nothing here imports torch.
"""
from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

THUMB = 192  # long side of a grid thumbnail, CSS pixels
STUDIO_DIR = ".studio"  # under OUT: thumbnails and the page's own state


class Refused(Exception):
    """A path outside FOLDER / OUT (or otherwise not allowed); the server answers 403."""


def safe_join(root: Path, rel: str) -> Path:
    """``root / rel`` when it stays inside ``root`` (symbolic links followed); else :class:`Refused`."""
    if not isinstance(rel, str) or not rel or "\x00" in rel:
        raise Refused("empty or invalid path")
    text = rel.replace("\\", "/")
    if text.startswith("/") or os.path.isabs(rel) or (len(text) > 1 and text[1] == ":"):
        raise Refused(f"{rel!r}: absolute paths are refused (give a path relative to the folder)")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise Refused(f"{rel!r}: '..' is refused (paths stay inside the folder)")
    root_real = os.path.realpath(root)
    full = os.path.realpath(os.path.join(root_real, *parts))
    if full != root_real and not full.startswith(root_real.rstrip(os.sep) + os.sep):
        raise Refused(f"{rel!r}: outside the folder")
    return Path(full)


def _sort_key(item_id: str):
    return tuple(item_id.split("/"))


def list_images(folder: Path, extensions) -> list[str]:
    """Ids (paths relative to ``folder``, '/'-separated) of its images, as the load step lists a folder."""
    exts = {e.lower() for e in extensions}
    folder = Path(folder)
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        try:
            st = os.stat(dirpath)
            key = (st.st_dev, st.st_ino)
        except OSError:
            dirnames[:] = []
            continue
        if key in seen:  # a symbolic link loop
            dirnames[:] = []
            continue
        seen.add(key)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel_dir = os.path.relpath(dirpath, folder)
        for f in filenames:
            if f.startswith(".") or os.path.splitext(f)[1].lower() not in exts:
                continue
            rel = f if rel_dir == "." else f"{rel_dir}/{f}".replace(os.sep, "/")
            found.append(rel)
    found.sort(key=_sort_key)
    return found


def make_thumbnail(path: Path, size: int = THUMB) -> bytes:
    """A JPEG thumbnail (long side ``size``) of an image file, decoded as colorbatch decodes it
    (orientation, 16-bit, palettes; JPEG in draft mode at a reduced scale)."""
    import numpy as np
    from PIL import Image

    from colorbatch.api import read_image

    dec = read_image(path, draft=(size * 2, size * 2), raw8=True)
    px = dec.pixels
    if px.dtype != np.uint8:
        px = np.clip(np.rint(np.asarray(px, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    im = Image.fromarray(px)
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=82)
    return buf.getvalue()


class Thumbnails:
    """Thumbnails made on first request and cached in memory and in ``cache_dir``."""

    def __init__(self, folder: Path, cache_dir: Path | None, size: int = THUMB):
        self.folder = Path(folder)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.size = size
        self._mem: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _key(self, rel: str, st) -> str:
        return hashlib.sha1(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0{self.size}".encode()).hexdigest()

    def get(self, rel: str) -> bytes:
        path = safe_join(self.folder, rel)
        st = path.stat()
        key = self._key(rel, st)
        hit = self._mem.get(key)
        if hit is not None:
            return hit
        cached = self.cache_dir / key[:2] / f"{key}.jpg" if self.cache_dir is not None else None
        if cached is not None and cached.is_file():
            data = cached.read_bytes()
        else:
            data = make_thumbnail(path, self.size)
            if cached is not None:
                from colorbatch.api import atomic_write_bytes

                cached.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(cached, data)
        with self._lock:
            if len(self._mem) > 4096:
                self._mem.clear()
            self._mem[key] = data
        return data
