"""Training curves as inline SVG (no scripts, no external resources)."""
from __future__ import annotations

import math
from html import escape

from colorbatch_report.rundata import finite

SERIES = (("train_loss", "train", "#2f6fdf"), ("val_loss", "validation", "#e0782b"))


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    out = []
    v = first
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1000 or a < 0.001:
        return f"{v:.2e}"
    return f"{v:.4g}"


def loss_svg(epochs: list[dict], width: int = 720, height: int = 300) -> str:
    """An SVG line chart of train and validation loss per epoch ('' when none)."""
    pts = {key: [(e["epoch"], float(e[key])) for e in epochs
                 if finite(e.get("epoch")) and finite(e.get(key))] for key, _, _ in SERIES}
    if not any(pts.values()):
        return ""
    xs = [x for s in pts.values() for x, _ in s]
    ys = [y for s in pts.values() for _, y in s]
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.08 or abs(y1) * 0.1 or 1.0
    y0, y1 = y0 - pad, y1 + pad
    left, right, top, bottom = 64, 16, 16, 40
    pw, ph = width - left - right, height - top - bottom

    def sx(x):
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y):
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    parts = [
        f'<svg id="loss-curve" class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="train and validation loss per epoch" preserveAspectRatio="xMidYMid meet">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="plot-bg"/>',
    ]
    for t in _ticks(y0, y1):
        y = sy(t)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_fmt(t)}</text>')
    xt = [t for t in _ticks(x0, x1, 8) if float(t).is_integer()] or [x0, x1]
    for t in xt:
        x = sx(t)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 4}" class="axis"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + ph + 18}" text-anchor="middle" class="tick">{_fmt(t)}</text>')
    parts.append(f'<text x="{left + pw / 2:.0f}" y="{height - 4}" text-anchor="middle" class="label">epoch</text>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + ph}" class="axis"/>')
    parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" class="axis"/>')
    for i, (key, label, colour) in enumerate(SERIES):
        s = pts[key]
        if not s:
            continue
        line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
        parts.append(f'<polyline class="series {escape(label)}" data-series="{key}" points="{line}" '
                     f'fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in s:
            parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}">'
                         f'<title>epoch {_fmt(x)}: {label} loss {y:.6g}</title></circle>')
        lx = left + 12 + i * 130
        parts.append(f'<rect x="{lx}" y="{top + 8}" width="14" height="4" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 20}" y="{top + 14}" class="legend">{escape(label)} loss</text>')
    val = pts["val_loss"]
    if val:
        bx, by = min(val, key=lambda p: p[1])
        parts.append(f'<circle cx="{sx(bx):.1f}" cy="{sy(by):.1f}" r="6" fill="none" stroke="#e0782b" '
                     f'class="best"><title>best validation loss {by:.6g} at epoch {_fmt(bx)}</title></circle>')
    parts.append("</svg>")
    return "\n".join(parts)
