"""Colour hint files: what the user says the colours are, per image.

A hint file is JSON, ``NAME.hints.json`` beside the image (``photo.jpg`` ->
``photo.hints.json``) or in a folder given by ``--hints DIR`` that mirrors the
input tree::

    {
      "version": 1,
      "points": [
        {"x": 120, "y": 80, "radius": 6, "color": "#1f3a93"},
        {"x": 0.5, "y": 0.25, "color": "navy"},
        {"x": 40, "y": 300, "color": [200, 30, 30]}
      ],
      "reference": "ref.jpg"
    }

``x``/``y``: numbers written with a decimal point from 0.0 to 1.0 are fractions of
the width/height; all other numbers are pixels of the original (0 = left/top).
``radius`` (pixels of the original, default 3) is the area the colour applies to.
``color``: ``#rrggbb`` (or ``#rgb``), an sRGB triplet 0-255, or a CSS colour name.
Only the chroma (a*b*) of a hint is used: the image's own lightness stays.
``reference`` (optional): a colour photo, relative to the hint file, whose colour
distribution is a global hint for this image (``--reference`` gives one for a
whole run). ``chroma`` (optional, 0-2): this image's colour strength, as ``--chroma``
(it overrides the run's; a model without hint inputs honours it too). The JSON Schema is ``docs/hints.schema.json`` (``colorbatch.hints.json_schema()``).
Nothing here imports torch.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from colorbatch.errors import ColorbatchError

SUFFIX = ".hints.json"
DEFAULT_RADIUS = 3.0
MAX_POINTS = 10_000


class HintPoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    x: Union[int, float] = Field(description="Column: pixels, or a fraction 0.0-1.0 (written with a decimal point) of the width.")
    y: Union[int, float] = Field(description="Row: pixels, or a fraction 0.0-1.0 (written with a decimal point) of the height.")
    radius: float = Field(DEFAULT_RADIUS, ge=0, le=10_000, description="Pixels of the original around (x, y).")
    color: Union[str, List[int]] = Field(description="#rrggbb, #rgb, [r, g, b] (0-255) or a CSS colour name.")

    @field_validator("x", "y")
    @classmethod
    def _coordinate(cls, v):
        if isinstance(v, bool):
            raise ValueError("expected a number")
        if v < 0:
            raise ValueError("must not be negative")
        return v

    @field_validator("color")
    @classmethod
    def _colour(cls, v):
        parse_colour(v)
        return v


class HintFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(1, description="Format version (1).")
    points: List[HintPoint] = Field(default_factory=list, max_length=MAX_POINTS, description="Point hints.")
    reference: Optional[str] = Field(None, description="A colour photo (relative to this file) used as a global hint.")
    chroma: Optional[float] = Field(None, ge=0.0, le=2.0, description="This image's colour strength (as --chroma: below 1 paler, above 1 more vivid); overrides the run's.")

    @field_validator("version")
    @classmethod
    def _version(cls, v):
        if v != 1:
            raise ValueError("only version 1 is known")
        return v


def parse_colour(v) -> tuple[int, int, int]:
    """``#rrggbb`` / ``#rgb`` / [r, g, b] / CSS name -> an sRGB triplet 0-255."""
    if isinstance(v, list):
        if len(v) != 3 or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in v):
            raise ValueError("an sRGB triplet is three whole numbers from 0 to 255")
        return int(v[0]), int(v[1]), int(v[2])
    if not isinstance(v, str) or not v.strip():
        raise ValueError("expected #rrggbb, [r, g, b] or a CSS colour name")
    from PIL import ImageColor

    s = v.strip()
    if s.startswith("#") and len(s) not in (4, 7):
        raise ValueError(f"{s!r}: a hex colour is #rgb or #rrggbb")
    try:
        rgb = ImageColor.getrgb(s)
    except ValueError:
        raise ValueError(f"{s!r} is not a colour (use #rrggbb, [r, g, b] or a CSS colour name such as navy)") from None
    return tuple(int(c) for c in rgb[:3])


def _where(exc: ValidationError) -> str:
    e = exc.errors()[0]
    loc = ".".join(str(p) for p in e.get("loc", ())) or "(top level)"
    msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
    return f"field {loc}: {msg}"


def load(path: str | Path) -> HintFile:
    """Read and check one hint file; a bad one raises one ColorbatchError naming file and field."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ColorbatchError(f"hints {path}: cannot read it ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ColorbatchError(f"hints {path}: not valid JSON{where}; see docs/hints.md for the format") from None
    if not isinstance(raw, dict):
        raise ColorbatchError(f"hints {path}: expected a JSON object with \"points\"; see docs/hints.md")
    try:
        return HintFile.model_validate(raw)
    except ValidationError as exc:
        raise ColorbatchError(f"hints {path}: {_where(exc)}") from None


def find(image: str | Path, hints_dir: str | Path | None = None, root: str | Path | None = None) -> Path | None:
    """The hint file of ``image``: in ``hints_dir`` (mirroring the tree under ``root``) or beside it."""
    image = Path(image)
    if hints_dir is not None:
        rel = image.name
        if root is not None:
            try:
                rel = str(image.relative_to(root))
            except ValueError:
                rel = image.name
        p = Path(hints_dir) / Path(rel).with_name(Path(rel).stem + SUFFIX)
        return p if _is_file(p) else None
    p = image.with_name(image.stem + SUFFIX)
    return p if _is_file(p) else None


def _is_file(p: Path) -> bool:
    """Whether ``p`` is a file; a name the file system cannot hold (the image's name plus the
    suffix over its limit) has no hint file."""
    try:
        return p.is_file()
    except OSError:
        return False


def points_in_pixels(hints: HintFile, width: int, height: int) -> list[tuple[float, float, float, tuple[int, int, int]]]:
    """(x, y, radius, rgb) per point in pixels of a ``width`` x ``height`` original."""
    out = []
    for p in hints.points:
        x = p.x * (width - 1) if isinstance(p.x, float) and p.x <= 1.0 else float(p.x)
        y = p.y * (height - 1) if isinstance(p.y, float) and p.y <= 1.0 else float(p.y)
        out.append((x, y, float(p.radius), parse_colour(p.color)))
    return out


def digest(hints: HintFile | None, reference: str | Path | None = None) -> str:
    """A short hash of the hints and reference that shape an output (for provenance and resume)."""
    if hints is None and reference is None:
        return ""
    h = hashlib.sha256()
    if hints is not None:
        h.update(hints.model_dump_json().encode())
    if reference is not None:
        try:
            h.update(hashlib.sha256(Path(reference).read_bytes()).digest())
        except OSError:
            h.update(str(reference).encode())
    return h.hexdigest()[:12]


SELF = "self"  # reference = "self": the colour input's own global hint (evaluation: the oracle)


@dataclass(frozen=True)
class ItemHints:
    """The hints one item is colorized with (see :class:`HintPlan`)."""

    file: Optional[Path] = None          # the hint file used, if any
    hints: Optional[HintFile] = None
    reference: Union[Path, str, None] = None   # a photo, or SELF
    simulate: int = 0                    # simulated point hints from the truth (evaluation)
    seed: int = 0
    digest: str = ""                     # recorded in provenance and the resume manifest

    @property
    def empty(self) -> bool:
        return self.hints is None and self.reference is None and not self.simulate


@dataclass
class HintPlan:
    """Where one run's hints come from: sidecar ``NAME.hints.json`` files (always looked
    for), a mirrored ``hints_dir``, a run-wide ``reference`` photo (or ``"self"``), and
    ``simulate`` point hints from the truth (evaluation, fixed ``seed``).

    The colorize step keeps one in the run state (``ctx.state.hints``) so the save step's
    resume check sees the same digest per item. Nothing here imports torch.
    """

    hints_dir: Optional[Path] = None
    reference: Union[Path, str, None] = None
    simulate: int = 0
    seed: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def explicit(self) -> bool:
        """Whether the run asked for hints (not only sidecars that may be present)."""
        return bool(self.hints_dir or self.reference or self.simulate)

    def hint_file(self, item) -> Optional[Path]:
        """The item's hint file: mirrored under ``hints_dir`` (by the item's id), else beside it."""
        if self.hints_dir is not None:
            rel = Path(item.id)
            p = Path(self.hints_dir) / rel.with_name(rel.stem + SUFFIX)
            if _is_file(p):
                return p
        if item.path is not None:
            return find(item.path)
        return None

    def lookup(self, item) -> ItemHints:
        """The item's hints (cached per item); a bad hint file raises one ColorbatchError."""
        key = (item.id, str(item.path))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._lookup(item)
        return hit

    def _lookup(self, item) -> ItemHints:
        if self.simulate or self.reference == SELF:
            tag = f"simulated {self.simulate} seed {self.seed}" + (" reference self" if self.reference == SELF else "")
            return ItemHints(reference=self.reference, simulate=int(self.simulate), seed=int(self.seed),
                             digest=hashlib.sha256(tag.encode()).hexdigest()[:12])
        path = self.hint_file(item)
        hints = load(path) if path is not None else None
        ref = self.reference
        if hints is not None and hints.reference:
            ref = (path.parent / hints.reference)
            if not ref.is_file():
                raise ColorbatchError(
                    f"hints {path}: field reference: {hints.reference!r} is not a file (a colour photo, "
                    "relative to the hint file)")
        if hints is None and ref is None:
            return ItemHints()
        return ItemHints(path, hints, ref, digest=digest(hints, ref))


def json_schema() -> dict:
    """The JSON Schema of a hint file (written to docs/hints.schema.json)."""
    s = HintFile.model_json_schema()
    s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    s["title"] = "colorbatch hint file"
    return s
