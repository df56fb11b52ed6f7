"""Colour hints on the report's before/after views.

The colorize step records, for each item colorized with colour hints,
``item.meta["hint_points"]``: ``[x, y, radius, "#rrggbb"]`` in pixels of the
original image (x = column, y = row), and ``item.meta["hints"]``: a short
digest. The report keeps them per item as a record ``{"size": [W, H],
"points": [...], "digest": str}`` (in ``thumbs/index.json``, so ``colorbatch
report`` shows them too) and draws each point as a small circle over the card,
placed in percent of the image's width and height so it follows the thumbnail
at any size.
"""
from __future__ import annotations

import math
import re
from html import escape

COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
MARKER_PX = 5  # radius of a marker on screen (CSS px): a hint's own radius is too small in a thumbnail


def _size(item) -> tuple[int, int] | None:
    """Width and height the points refer to: the full-resolution L* (else the output, the
    colour input, the decoder's ``width``/``height``)."""
    for arr in (item.L, item.output, item.rgb):
        shape = getattr(arr, "shape", None)
        if shape is not None and len(shape) >= 2 and shape[0] > 0 and shape[1] > 0:
            return int(shape[1]), int(shape[0])
    meta = item.meta or {}
    w, h = meta.get("width"), meta.get("height")
    if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
        return w, h
    return None


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def clean(record) -> dict | None:
    """A hint record as stored, checked (from an item or from ``index.json``); None if unusable."""
    if not isinstance(record, dict):
        return None
    size = record.get("size")
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(_number(v) and v > 0 for v in size)):
        return None
    points = []
    for p in record.get("points") or []:
        if (isinstance(p, (list, tuple)) and len(p) == 4 and all(_number(v) for v in p[:3])
                and isinstance(p[3], str) and COLOUR.match(p[3])):
            points.append([float(p[0]), float(p[1]), float(p[2]), p[3].lower()])
    if not points:
        return None
    digest = record.get("digest")
    return {"size": [int(size[0]), int(size[1])], "points": points,
            "digest": digest if isinstance(digest, str) else None}


def from_item(item) -> dict | None:
    """The hint record of an in-flight item, or None when it was colorized without hints."""
    meta = item.meta or {}
    if not meta.get("hint_points"):
        return None
    size = _size(item)
    if size is None:
        return None
    return clean({"size": list(size), "points": meta["hint_points"], "digest": meta.get("hints")})


def label(n: int) -> str:
    return f"{n} colour hint" + ("" if n == 1 else "s")


def outline(colour: str) -> str:
    """Black around a light fill, white around a dark one: one of the two stands out anywhere."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#000000" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"


def overlay(record: dict | None) -> str:
    """An SVG over the image with one circle per hint; "" without hints."""
    if not record:
        return ""
    (w, h), points = record["size"], record["points"]
    n = len(points)
    out = [f'<svg class="hints" aria-label="{label(n)}" data-count="{n}">']
    for i, (x, y, r, colour) in enumerate(points, 1):
        fx, fy = min(max(x / w, 0.0), 1.0), min(max(y / h, 0.0), 1.0)
        out.append(f'<circle cx="{fx * 100:.3f}%" cy="{fy * 100:.3f}%" r="{MARKER_PX}" fill="{colour}" '
                   f'stroke="{outline(colour)}" stroke-width="1.5"><title>hint {i}: {colour} at '
                   f'x {x:g}, y {y:g}, radius {r:g} px</title></circle>')
    out.append("</svg>")
    return "".join(out)


def legend(record: dict | None) -> str:
    """The caption's "N colour hints" (the digest in its tooltip); "" without hints."""
    if not record:
        return ""
    n = len(record["points"])
    digest = f" (hints {record['digest']})" if record.get("digest") else ""
    return (f'<span class="hints-legend" title="{escape(label(n) + digest, quote=True)}">'
            f'<svg class="swatch" width="10" height="10"><circle cx="5" cy="5" r="4"/></svg> {label(n)}</span>')
