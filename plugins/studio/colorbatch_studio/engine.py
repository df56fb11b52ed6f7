"""The studio's work: previews with the batch tool's Colorizer calls, hint sidecars, Save.

Opening an image decodes it once and keeps, per image (the last few opened): the
quantised full-resolution L*, the network input ``small`` (made as the colorize step
makes it), the encoder's features (``Colorizer.encode``) and L* at display size. A new
hint then costs only the decoder (``Colorizer.decode``, the same result as
``predict_small``) plus the recombination at display size.

What the page changes goes where the batch tool reads it:

* points, a reference photo and the image's chroma (colour strength, its ``chroma``
  field) -> the hint sidecar ``NAME.hints.json`` beside the image (written at once;
  removed when nothing is left in it), read by ``colorbatch colorize``, so the plain batch
  command reproduces a folder whose images have chroma settings of their own;
* Save -> the batch path itself: a recipe ``load -> colorize -> save`` run in this process
  on that one file (a glob rooted at FOLDER, so the output lands where ``colorbatch
  colorize FOLDER --out OUT`` puts it), so its pixels are the batch tool's, byte for byte.
"""
from __future__ import annotations

import glob as _glob
import io
import json
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from colorbatch_studio.files import STUDIO_DIR, Refused, Thumbnails, list_images, safe_join

DISPLAY = 1024  # long side of the detail view's images
KEEP_OPEN = 4   # images whose features stay in memory


class StudioError(Exception):
    """A request the studio cannot serve (bad hint, unreadable image); one line for the page."""


@dataclass
class Opened:
    """One image, ready to re-colorize: what a new hint does not change."""

    id: str
    path: Path
    H: int
    W: int
    small: Any            # (1, h, w) L*/100 at network size
    encoded: Any          # Colorizer.encode(small), or None when the model cannot be split
    Ld: np.ndarray        # float32 L* at display size
    gray_png: bytes
    mtime: int


@dataclass
class ImageState:
    points: list = field(default_factory=list)   # [(x, y, radius, (r, g, b))] in pixels of the original
    reference: Optional[str] = None              # id (relative to FOLDER) of a colour photo
    chroma: Any = "auto"
    hint_error: Optional[str] = None             # a sidecar the batch tool would refuse


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def parse_chroma(value) -> Any:
    if value is None or value == "auto":
        return "auto"
    try:
        c = round(float(value), 3)
    except (TypeError, ValueError):
        raise StudioError(f"chroma {value!r}: expected auto or a number from 0 to 2") from None
    if not 0.0 <= c <= 2.0:
        raise StudioError(f"chroma {c}: expected a number from 0 to 2")
    return c


def glob_for(folder: Path, rel: str) -> str:
    """A glob that matches exactly ``folder/rel`` and whose fixed root is ``folder`` (so the load
    step gives the item the id it has in a run over the whole folder)."""
    parts = rel.split("/")
    first = parts[0]
    i = next((k for k, c in enumerate(first) if c not in "!"), None)
    if i is None:
        raise StudioError(f"{rel}: cannot name this file alone (a name of only '!')")
    c = first[i]
    magic = _glob.escape(c) if c in "*?[" else f"[{c}]"
    parts[0] = _glob.escape(first[:i]) + magic + _glob.escape(first[i + 1:])
    rest = [_glob.escape(p) for p in parts[1:]]
    return os.path.join(str(folder), *([parts[0]] + rest))


class Studio:
    """The state behind one ``colorbatch studio`` page."""

    def __init__(self, folder: Path, out: Path, model=None, size: int = 256, device: str = "cpu",
                 display: int = DISPLAY, fmt: Optional[str] = None, threads: Optional[int] = None):
        from colorbatch.api import IMAGE_EXTENSIONS, Colorizer, configure_threads

        self.folder = Path(folder).resolve()
        self.out = Path(out).resolve()
        self.size = int(size)
        self.display = int(display)
        self.fmt = fmt
        self.extensions = tuple(IMAGE_EXTENSIONS)
        self.colorizer = Colorizer(model, device, self.size, 1, "auto")
        # The network's thread count changes float summation order (one 8-bit level on a few
        # pixels): chosen once (the free cores now, or --threads) and used by the previews,
        # Save and the printed batch command alike, with a batch size of 1.
        self.threads = configure_threads(self.colorizer.device, 0, threads)
        self.studio_dir = self.out / STUDIO_DIR
        self.thumbs = Thumbnails(self.folder, self.studio_dir / "thumbs")
        self._lock = threading.RLock()
        self._open: "OrderedDict[str, Opened]" = OrderedDict()
        self._refs: dict = {}
        self._ids: list[str] = []
        self.refresh()
        from colorbatch.api import warm_kernels

        # Save and the batch command take the fused kernels; a preview made before they load
        # would take the torch tables (up to one 8-bit level off): load them now, in the
        # background, and wait for them before the first decode (_pixels_ready)
        warm_kernels()

    # ---- what the page is told once ------------------------------------------
    @property
    def hints_reason(self) -> Optional[str]:
        """None when hints can be placed; else why not (shown on the page)."""
        if self.colorizer.accepts_hints:
            return None
        return (f"Hint placement is off: the model {self.colorizer.model_id} takes no colour hints (it has no "
                "hint inputs). Start the studio with a hint-aware model (--model, or the shipped default once "
                "it is one). Reviewing, comparing and the chroma slider work as usual.")

    def batch_command(self) -> str:
        """The colorize command that reproduces the page's outputs (hints and chroma come from the sidecars)."""
        model = f" --model {self.colorizer.path}" if self.colorizer.path else ""
        fmt = f" --format {self.fmt}" if self.fmt else ""
        # the previews run on torch (a new hint re-runs only its decoder): so do Save and this command
        run = f" --batch-size 1 --threads {self.threads}" if self.colorizer.device.type == "cpu" else " --batch-size 1"
        run += " --runtime torch"
        return f"colorbatch colorize {self.folder} --out {self.out}{model} --size {self.size}{run}{fmt}"

    def info(self) -> dict:
        return {"folder": str(self.folder), "out": str(self.out), "model": self.colorizer.model_id,
                "model_path": str(self.colorizer.path) if self.colorizer.path else None,
                "size": self.size, "accepts_hints": self.colorizer.accepts_hints, "hints_reason": self.hints_reason,
                "count": len(self._ids), "command": self.batch_command(), "display": self.display}

    # ---- the folder ---------------------------------------------------------------
    def refresh(self) -> list[str]:
        ids = list_images(self.folder, self.extensions)
        out_real = str(self.out) + os.sep
        if (str(self.out) + os.sep).startswith(str(self.folder) + os.sep):  # OUT inside FOLDER
            ids = [i for i in ids if not str(self.folder / i).startswith(out_real)]
        self._ids = ids
        return ids

    @property
    def ids(self) -> list[str]:
        return self._ids

    def image_path(self, rel: str) -> Path:
        path = safe_join(self.folder, rel)
        if not path.is_file():
            raise FileNotFoundError(rel)
        return path

    def sidecar(self, rel: str) -> Path:
        from colorbatch.api import HINTS_SUFFIX

        path = self.image_path(rel)
        return path.with_name(path.stem + HINTS_SUFFIX)

    def output_of(self, rel: str) -> Optional[str]:
        """The saved output of ``rel`` under OUT (relative to OUT), if any."""
        p = Path(rel)
        folder = safe_join(self.out, str(p.parent)) if str(p.parent) not in ("", ".") else self.out
        if not folder.is_dir():
            return None
        best = None
        for cand in folder.glob(_glob.escape(p.stem) + ".*"):
            if cand.stem == p.stem and cand.suffix.lower() in {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff"}:
                if best is None or cand.stat().st_mtime > best.stat().st_mtime:
                    best = cand
        return best.relative_to(self.out).as_posix() if best is not None else None

    def page(self, page: int, per: int) -> dict:
        per = max(1, min(500, int(per)))
        total = len(self._ids)
        pages = max(1, -(-total // per))
        page = max(0, min(int(page), pages - 1))
        items = []
        for i, rel in enumerate(self._ids[page * per : (page + 1) * per]):
            hinted, chroma = self._badges(rel)
            items.append({"id": rel, "index": page * per + i, "hints": hinted,
                          "chroma": chroma, "saved": self.output_of(rel) is not None})
        return {"total": total, "page": page, "pages": pages, "per": per, "items": items}

    def _badges(self, rel: str) -> tuple[bool, Any]:
        """(has hints, chroma) as the grid shows them, from the sidecar alone (nothing decoded)."""
        from colorbatch.api import ColorbatchError, load_hints

        try:
            side = self.sidecar(rel)
            if not side.is_file():
                return False, "auto"
            hints = load_hints(side)
        except (Refused, FileNotFoundError):
            return False, "auto"
        except ColorbatchError:
            return True, "auto"  # the detail view says what is wrong with it
        chroma = "auto" if hints.chroma is None else hints.chroma
        return bool(hints.points or hints.reference), chroma

    # ---- hints --------------------------------------------------------------------------
    def state(self, rel: str) -> ImageState:
        """What the sidecar and the studio's state say about ``rel``."""
        from colorbatch.api import ColorbatchError, load_hints, points_in_pixels

        st = ImageState()
        side = self.sidecar(rel)
        if not side.is_file():
            return st
        try:
            hints = load_hints(side)
        except ColorbatchError as exc:
            st.hint_error = str(exc)
            return st
        if hints.chroma is not None:
            st.chroma = hints.chroma
        op = self.open(rel)
        st.points = points_in_pixels(hints, op.W, op.H)
        if hints.reference:
            ref = (side.parent / hints.reference).resolve()
            try:
                st.reference = ref.relative_to(self.folder).as_posix()
            except ValueError:
                st.hint_error = (f"hints {side}: its reference {hints.reference} lies outside the folder; "
                                 "the studio leaves it as it is")
        return st

    def describe(self, rel: str) -> dict:
        op = self.open(rel)
        st = self.state(rel)
        return {"id": rel, "width": op.W, "height": op.H, "net": list(self.colorizer.net_hw((op.H, op.W))),
                "display": list(op.Ld.shape), "chroma": st.chroma, "reference": st.reference,
                "points": [{"x": x, "y": y, "radius": r, "color": "#%02x%02x%02x" % tuple(c)} for x, y, r, c in st.points],
                "hint_error": st.hint_error, "output": self.output_of(rel),
                "index": self._ids.index(rel) if rel in self._ids else None,
                "command": self.batch_command()}

    def parse_state(self, rel: str, body: dict) -> ImageState:
        """The page's state for ``rel`` (points in pixels of the original), checked as a hint file is."""
        from colorbatch.api import HintFile

        op = self.open(rel)
        points = body.get("points") or []
        if not isinstance(points, list):
            raise StudioError("points: expected a list")
        clean = []
        for k, p in enumerate(points):
            if not isinstance(p, dict):
                raise StudioError(f"points.{k}: expected an object with x, y, radius, color")
            try:
                x = int(round(float(p["x"])))
                y = int(round(float(p["y"])))
                r = round(float(p.get("radius", 3)), 1)
            except (KeyError, TypeError, ValueError):
                raise StudioError(f"points.{k}: x, y and radius are numbers") from None
            if not (0 <= x < op.W and 0 <= y < op.H):
                raise StudioError(f"points.{k}: ({x}, {y}) is outside the {op.W} x {op.H} image")
            clean.append({"x": x, "y": y, "radius": r, "color": p.get("color")})
        try:
            HintFile.model_validate({"version": 1, "points": clean})
        except Exception as exc:  # noqa: BLE001 - pydantic's message, first error
            errs = getattr(exc, "errors", lambda: [{"loc": (), "msg": str(exc)}])()
            e = errs[0]
            raise StudioError(f"field {'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}") from None
        from colorbatch.api import points_in_pixels

        hf = HintFile.model_validate({"version": 1, "points": clean})
        ref = body.get("reference") or None
        if ref is not None:
            path = self.image_path(ref)  # refuses paths outside FOLDER
            self._reference(path)        # a colour photo, or a one-line error
        return ImageState(points_in_pixels(hf, op.W, op.H), ref, parse_chroma(body.get("chroma", "auto")))

    def write_state(self, rel: str, st: ImageState) -> Optional[Path]:
        """Write the sidecar: points, reference and chroma (removed when none is left); its path or None."""
        from colorbatch.api import atomic_write_text

        side = self.sidecar(rel)
        if st.points or st.reference or st.chroma != "auto":
            data: dict = {"version": 1, "points": [
                {"x": int(x), "y": int(y), "radius": r, "color": "#%02x%02x%02x" % tuple(c)} for x, y, r, c in st.points]}
            if st.reference:
                ref = self.image_path(st.reference)
                data["reference"] = Path(os.path.relpath(ref, side.parent)).as_posix()
            if st.chroma != "auto":
                data["chroma"] = st.chroma
            atomic_write_text(side, json.dumps(data, indent=2) + "\n")
            return side
        if side.is_file():
            side.unlink()
        return None

    # ---- colorizing ---------------------------------------------------------------------

    def open(self, rel: str) -> Opened:
        """Decode ``rel`` once (cached for the last few opened) and run the encoder on it."""
        path = self.image_path(rel)
        mtime = path.stat().st_mtime_ns
        with self._lock:
            hit = self._open.get(rel)
            if hit is not None and hit.mtime == mtime:
                self._open.move_to_end(rel)
                return hit
            op = self._decode(rel, path, mtime)
            self._open[rel] = op
            while len(self._open) > KEEP_OPEN:
                self._open.popitem(last=False)
            return op

    @staticmethod
    def _pixels_ready() -> None:
        from colorbatch.api import wait_kernels

        wait_kernels()

    def _decode(self, rel: str, path: Path, mtime: int) -> Opened:
        import torch

        from colorbatch.api import (
            L_SCALE,
            Item,
            L_to_gray,
            configure_threads,
            decode_item,
            net_shape,
            quantize_L,
            resize_L01,
        )

        self._pixels_ready()
        item = Item(id=rel, path=path, root=self.folder, kind="image")
        try:
            decode_item(item)
        except Exception as exc:  # noqa: BLE001 - one line for the page
            from colorbatch.api import one_line

            raise StudioError(f"{rel}: cannot read it ({one_line(exc)})") from None
        Lq = quantize_L(item.L)
        H, W = Lq.shape
        configure_threads(self.colorizer.device, 0, self.threads)
        small = resize_L01(Lq, self.colorizer.net_hw((H, W)))
        encoded = self.colorizer.encode(small) if self.colorizer.can_split else None
        if max(H, W) > self.display:
            Ld = (resize_L01(Lq, net_shape(H, W, self.display))[0] * 100.0).numpy().astype(np.float32)
        else:
            Ld = Lq.astype(np.float32) / L_SCALE
        with torch.inference_mode():
            gray = L_to_gray(Ld)
        return Opened(rel, path, H, W, small, encoded, Ld, png_bytes(gray), mtime)

    def _reference(self, path: Path):
        key = (str(path), path.stat().st_mtime_ns)
        hit = self._refs.get(key)
        if hit is None:
            from colorbatch.api import read_image, reference_colourfulness, reference_hint

            try:
                img = read_image(path)
            except Exception as exc:  # noqa: BLE001
                from colorbatch.api import one_line

                raise StudioError(f"reference {path.name}: cannot read it ({one_line(exc)})") from None
            if not img.is_color or img.meta.get("near_gray"):
                raise StudioError(f"reference {path.name}: is a gray image; a reference must be a colour photo")
            hit = self._refs[key] = (reference_hint(img.pixels), reference_colourfulness(img.pixels))
        return hit

    def predict(self, rel: str, st: ImageState):
        """a*b*/128 at network size for ``rel`` with ``st``: what the colorize step predicts."""
        from colorbatch.api import configure_threads, hints_for_image

        op = self.open(rel)
        c = self.colorizer
        chroma = None if st.chroma == "auto" else float(st.chroma)
        hints = None
        if st.points or st.reference or chroma is not None:
            if (st.points or st.reference) and not c.accepts_hints:
                raise StudioError(self.hints_reason)
            glob_hint, vivid = self._reference(self.image_path(st.reference)) if st.reference else (None, None)
            # the hints the colorize step makes from the sidecar, chroma included
            hints = hints_for_image(st.points, (op.H, op.W), c.net_hw((op.H, op.W)), glob_hint, vivid, chroma)
        with self._lock:
            configure_threads(c.device, 0, self.threads)
            if op.encoded is not None:
                return c.decode(op.encoded, op.small, hints)
            return c.predict_small([op.small], [hints] if hints is not None else None)[0]

    def preview(self, rel: str, st: Optional[ImageState] = None) -> tuple[bytes, float]:
        """PNG of ``rel`` colorized with ``st`` (default: its saved state) at display size; seconds taken."""
        t0 = time.perf_counter()
        if st is None:
            st = self.state(rel)
            if st.hint_error or (st.points and not self.colorizer.accepts_hints):
                st = ImageState(chroma=st.chroma)  # the page says why the hints are not shown
        op = self.open(rel)
        pred = self.predict(rel, st)
        self._pixels_ready()
        with self._lock:
            rgb, _ = self.colorizer.recombine(op.Ld, pred)
        data = png_bytes(rgb)
        return data, time.perf_counter() - t0

    # ---- Save: the batch path itself ----------------------------------------------------
    def save(self, rel: str) -> dict:
        """Colorize ``rel`` at full resolution through ``load -> colorize -> save`` (the batch path)."""
        from colorbatch.api import build_plan, plugin_manager, run_plan, steps_of

        self.image_path(rel)
        # the colorize step reads the image's sidecar (hints and chroma) as the batch command does
        colorize = {"size": self.size, "batch_size": 1, "device": str(self.colorizer.device), "workers": 0,
                    "runtime": "torch",
                    "threads": self.threads if self.colorizer.device.type == "cpu" else None}
        if self.colorizer.path is not None:
            colorize["model"] = str(self.colorizer.path)
        save = {"out": str(self.out), "overwrite": True}
        if self.fmt:
            save["format"] = self.fmt
        raw = {"schema_version": 1, "name": "studio-save", "steps": [
            {"uses": "load", "with": {"source": glob_for(self.folder, rel)}},
            {"uses": "colorize", "with": colorize},
            {"uses": "save", "with": save}]}
        pm = plugin_manager()
        t0 = time.perf_counter()
        with self._lock:
            plan = build_plan(raw, steps_of(pm), label="colorbatch studio save", base_dir=self.folder)
            plan.run_dir = None
            summary = run_plan(plan, pm, show_progress=False, json_mode=True, write_run_files=False)
        exc = summary.pop("_exception", None)
        if exc is not None or summary.get("failed") or not summary.get("ok"):
            why = str(exc) if exc is not None else "; ".join(
                str(f.get("error", f)) if isinstance(f, dict) else str(f) for f in (summary.get("failures") or [])
            ) or f"{summary.get('failed', 0)} failed"
            raise StudioError(f"save {rel}: {why}")
        return {"output": self.output_of(rel), "seconds": round(time.perf_counter() - t0, 2),
                "command": self.batch_command()}
