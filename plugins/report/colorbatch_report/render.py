"""The report as one self-contained HTML page (inline CSS, JS and SVG).

Nothing is fetched from the network; the only external files are the
thumbnails, referenced by relative paths (``thumbs/...``).
"""
from __future__ import annotations

import json
from functools import lru_cache
from html import escape
from importlib import resources

from colorbatch_report.hints import legend, overlay
from colorbatch_report.rundata import finite, is_number
from colorbatch_report.svg import loss_svg

BASE_METRICS = ("psnr", "ssim", "ab_mse", "colorfulness")
PREFERRED_COLUMNS = (
    "psnr", "gray_psnr", "psnr_gain", "ssim", "gray_ssim", "ssim_gain", "ab_mse", "gray_ab_mse",
    "colorfulness", "gray_colorfulness", "colorfulness_gt", "colorfulness_gap",
)
LOWER_IS_BETTER = {"ab_mse", "gray_ab_mse"}
TABLE_PAGE = 200
FAILURE_LIMIT = 500
PAGE_SIZE = 24


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    return resources.files("colorbatch_report").joinpath("assets", name).read_text(encoding="utf-8")


def e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items())
    return str(value)


def duration(seconds) -> str:
    if not is_number(seconds):
        return "?"
    s = float(seconds)
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


def metric_columns(rows: list[dict]) -> list[str]:
    seen: set[str] = set()
    for row in rows[:2000]:
        for k, v in row.items():
            if k != "item" and (is_number(v) or v is None):
                seen.add(k)
    first = [c for c in PREFERRED_COLUMNS if c in seen]
    return first + sorted(seen - set(first))


def _num_cell(value, cls: str = "") -> str:
    if is_number(value):
        sign = ""
        if cls in ("gain", "loss") and finite(value) and value:
            sign = " pos" if (value > 0) == (cls == "gain") else " neg"
        return f'<td class="{cls}{sign}" data-value="{e(repr(float(value)) if isinstance(value, float) else value)}">{e(fmt(value))}</td>'
    return f'<td data-value="">{e(fmt(value))}</td>'


# --------------------------------------------------------------------------- #
# sections
# --------------------------------------------------------------------------- #


def _summary(m: dict) -> str:
    s = m["summary"]
    status = str(s.get("status") or "unknown")
    tiles = [
        ("ok", s.get("ok"), "good"),
        ("failed", s.get("failed"), "bad" if s.get("failed") else ""),
        ("skipped", s.get("skipped"), ""),
        ("duration", duration(s.get("seconds")), ""),
        ("items / s", fmt(s.get("rate")) if is_number(s.get("rate")) else None, ""),
        ("device", s.get("device"), ""),
    ]
    out = ['<section id="summary"><h2>Run summary</h2><div class="tiles">']
    for key, value, cls in tiles:
        if value is None:
            continue
        out.append(f'<div class="tile {cls}" data-key="{e(key)}"><div class="v">{e(fmt(value))}</div>'
                   f'<div class="k">{e(key)}</div></div>')
    out.append("</div>")
    facts = [
        ("recipe", s.get("recipe")), ("source", s.get("source")), ("status", status),
        ("started", s.get("started")), ("run folder", s.get("run_dir")), ("world size", s.get("world_size")),
    ]
    if s.get("error"):
        facts.append(("error", s.get("error")))
    versions = s.get("versions")
    if isinstance(versions, dict) and versions:
        facts.append(("versions", ", ".join(f"{k} {v}" for k, v in versions.items())))
    state = s.get("state")
    if isinstance(state, dict):
        for key in ("model_id", "model", "checkpoint"):
            if state.get(key):
                facts.append((key.replace("_", " "), state[key]))
    out.append('<dl class="facts" id="facts">')
    for k, v in facts:
        if v not in (None, ""):
            out.append(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>")
    out.append("</dl>")
    if not m["final"]:
        out.append('<p class="muted">This report was written before the run finished; '
                   'the counts may be incomplete (rebuild with <code>colorbatch report RUN_DIR</code>).</p>')
    steps = s.get("steps")
    if isinstance(steps, dict) and steps:
        out.append('<table id="steps"><thead><tr><th class="text">step</th><th>in</th><th>ok</th>'
                   '<th>failed</th><th>skipped</th><th>seconds</th></tr></thead><tbody>')
        for sid, st in steps.items():
            st = st if isinstance(st, dict) else {}
            out.append(f'<tr><td class="text">{e(sid)}</td>' + "".join(
                f"<td>{e(fmt(st.get(k)))}</td>" for k in ("in", "ok", "failed", "skipped", "seconds")) + "</tr>")
        out.append("</tbody></table>")
    if m.get("recipe"):
        out.append("<details><summary>recipe</summary><pre>"
                   + e(json.dumps(m["recipe"], indent=2, default=str)) + "</pre></details>")
    for note in m.get("notes") or []:
        out.append(f'<p class="muted note">note: {e(note)}</p>')
    out.append("</section>")
    return "".join(out)


def _failures(m: dict) -> str:
    failures = m["failures"]
    if not failures:
        return ""
    out = [f'<section id="failures-section"><h2>Failures ({len(failures)})</h2><div class="scroll"><ul class="failures" id="failures">']
    for f in failures[:FAILURE_LIMIT]:
        item, reason = str(f.get("item") or ""), str(f.get("error") or "")
        if item and reason.startswith(item + ": "):
            reason = reason[len(item) + 2:]  # the path is shown once
        out.append(f'<li data-item="{e(item)}"><code>{e(item)}</code> '
                   f'<span class="muted">in {e(f.get("step"))}:</span> <span class="reason">{e(reason)}</span></li>')
    out.append("</ul></div>")
    if len(failures) > FAILURE_LIMIT:
        out.append(f'<p class="muted">{len(failures) - FAILURE_LIMIT} more in run.json.</p>')
    out.append("</section>")
    return "".join(out)


def _training(m: dict) -> str:
    epochs = m["epochs"]
    if not epochs:
        return ""
    chart = loss_svg(epochs)
    out = ['<section id="training"><h2>Training</h2>', chart or '<p class="muted">no loss values logged</p>']
    best = m.get("best_epoch")
    if best:
        out.append(f'<p>best validation loss <b>{e(fmt(best.get("val_loss")))}</b> at epoch {e(best.get("epoch"))} '
                   f'of {len(epochs)}.</p>')
    cols = [c for c in ("epoch", "train_loss", "val_loss", "lr", "seconds", "images_per_s")
            if any(c in ep for ep in epochs)]
    out.append(f'<details><summary>epochs ({len(epochs)})</summary><table id="epochs" class="sortable"><thead><tr>')
    out.append("".join(f"<th>{e(c)}</th>" for c in cols) + "</tr></thead><tbody>")
    for ep in epochs:
        out.append("<tr>" + "".join(_num_cell(ep.get(c)) for c in cols) + "</tr>")
    out.append("</tbody></table></details></section>")
    return "".join(out)


def _stat(value, key: str):
    """``value`` is a number or a summary dict (mean, median, p10, ...)."""
    if isinstance(value, dict):
        return value.get(key)
    return value if key == "mean" else None


def _aggregate(m: dict) -> str:
    agg = m["aggregate"]
    out = ['<table id="aggregate"><thead><tr><th class="text">metric</th><th>model (mean)</th>'
           '<th>gray baseline (mean)</th><th>model &minus; gray</th><th>model (median)</th>'
           '<th>gray (median)</th><th>model p10 .. p90</th></tr></thead><tbody>']
    used = set()
    for base in BASE_METRICS:
        if base not in agg and f"gray_{base}" not in agg:
            continue
        model, gray = agg.get(base), agg.get(f"gray_{base}")
        mm, gm = _stat(model, "mean"), _stat(gray, "mean")
        diff = mm - gm if finite(mm) and finite(gm) else None
        tone = "gain" if base in ("psnr", "ssim") else ("loss" if base in LOWER_IS_BETTER else "")
        p10, p90 = _stat(model, "p10"), _stat(model, "p90")
        spread = f"{fmt(p10)} .. {fmt(p90)}" if finite(p10) and finite(p90) else ""
        out.append(f'<tr data-metric="{e(base)}"><td class="text">{e(base)}</td>{_num_cell(mm)}{_num_cell(gm)}'
                   f'{_num_cell(diff, tone)}{_num_cell(_stat(model, "median"))}{_num_cell(_stat(gray, "median"))}'
                   f'<td>{e(spread)}</td></tr>')
        used |= {base, f"gray_{base}"}
    for key, value in agg.items():
        if key in used or not (is_number(value) or isinstance(value, dict)):
            continue
        cls = "gain" if key.endswith("_gain") else ""
        p10, p90 = _stat(value, "p10"), _stat(value, "p90")
        spread = f"{fmt(p10)} .. {fmt(p90)}" if finite(p10) and finite(p90) else ""
        out.append(f'<tr data-metric="{e(key)}"><td class="text">{e(key)}</td>{_num_cell(_stat(value, "mean"), cls)}'
                   f'<td></td><td></td>{_num_cell(_stat(value, "median"))}<td></td><td>{e(spread)}</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _json_cell(value):
    if isinstance(value, bool) or not is_number(value):
        return None if value is None or isinstance(value, bool) else str(value)
    return value if finite(value) else None


def table_data(rows: list[dict], cols: list[str]) -> str:
    """All rows as compact JSON for the page's script, safe inside <script>."""
    data = {"columns": ["item", *cols],
            "gain": [c.endswith("_gain") for c in ["item", *cols]],
            "rows": [[r["item"], *(_json_cell(r.get(c)) for c in cols)] for r in rows]}
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _evaluation(m: dict) -> str:
    rows = m["metrics"]
    if not rows and not m["aggregate"]:
        return ""
    cols = metric_columns(rows)
    out = ['<section id="evaluation"><h2>Evaluation</h2>']
    if m.get("metrics_source"):
        out.append(f'<p class="muted">{len(rows)} images, from {e(m["metrics_source"])}; '
                   'gains are the model minus the gray baseline (the L* input alone).</p>')
    out.append(_aggregate(m))
    if rows:
        # the first page is written as HTML (readable without scripts); the script
        # renders every page from the JSON below and sorts all rows, not just one page
        shown = rows[:TABLE_PAGE]
        out.append('<h3>Per image <span class="muted">(click a header to sort)</span></h3>')
        out.append('<div class="pager" id="metrics-pager" hidden><button class="prev" type="button">previous</button>'
                   '<span class="where"></span><button class="next" type="button">next</button></div>')
        out.append('<div class="table-wrap"><table id="metrics-table" class="sortable" '
                   f'data-source="metrics-data" data-page-size="{TABLE_PAGE}" data-pager="metrics-pager"><thead><tr>'
                   '<th class="text" data-type="text" data-key="item">item</th>')
        out.append("".join(f'<th data-key="{e(c)}">{e(c)}</th>' for c in cols) + "</tr></thead><tbody>")
        for row in shown:
            cells = [f'<td class="item" data-value="{e(row["item"])}" title="{e(row["item"])}">{e(row["item"])}</td>']
            cells += [_num_cell(row.get(c), "gain" if c.endswith("_gain") else "") for c in cols]
            out.append('<tr>' + "".join(cells) + "</tr>")
        out.append("</tbody></table></div>")
        if len(rows) > len(shown):
            out.append(f'<noscript><p class="muted">first {len(shown)} of {len(rows)} rows; '
                       'all rows in metrics.json.</p></noscript>')
        out.append(f'<script type="application/json" id="metrics-data">{table_data(rows, cols)}</script>')
    out.append("</section>")
    return "".join(out)


def card(entry: dict, lazy: bool = True) -> str:
    t = entry.get("thumbs") or {}
    item = entry["item"]
    load = ' loading="lazy"' if lazy else ""
    panels = []
    gray, color, truth = t.get("gray"), t.get("color"), t.get("truth")
    marks = overlay(entry.get("hints"))  # the colour hints, over the before/after view
    if gray and color:
        panels.append(
            '<div class="panel"><div class="compare">'
            f'<img class="under" src="{e(gray)}" alt="gray input"{load}>'
            f'<img class="over" src="{e(color)}" alt="colorized"{load}>'
            f'<div class="divider"></div>{marks}</div>'
            '<span class="tag">colorized</span><span class="tag right">gray</span>'
            '<input type="range" class="slider" min="0" max="100" value="50" '
            f'aria-label="before / after: {e(item)}"></div>')
    else:
        one = color or gray
        if one:
            panels.append(f'<div class="panel"><img src="{e(one)}" alt="{"colorized" if color else "gray input"}"{load}>'
                          f'<span class="tag">{"colorized" if color else "gray input"}</span>{marks}</div>')
    if truth:
        panels.append(f'<div class="panel"><img class="truth" src="{e(truth)}" alt="ground truth"{load}>'
                      '<span class="tag">ground truth</span></div>')
    cls = "pair" if len(panels) > 1 else "pair single"
    caption = [f"<span>{e(item)}</span>"]
    row = entry.get("metrics") or {}
    bits = [f"{k} {fmt(row[k])}" for k in ("psnr", "psnr_gain", "ssim") if finite(row.get(k))]
    if bits:
        caption.append(f'<br><span class="m">{e(" · ".join(bits))}</span>')
    if entry.get("hints"):
        caption.append(f'<br>{legend(entry["hints"])}')
    return (f'<figure class="card" data-item="{e(item)}"><div class="{cls}">{"".join(panels)}</div>'
            f'<figcaption>{"".join(caption)}</figcaption></figure>')


def _best_worst(m: dict) -> str:
    rank = m.get("rank")
    if not rank or not (m["best"] or m["worst"]):
        return ""
    better = "higher" if rank["higher_is_better"] else "lower"
    out = [f'<section id="best-worst"><h2>Best and worst images</h2><p class="muted">by '
           f'<b>{e(rank["metric"])}</b> ({better} is better).</p>']
    for key, label in (("best", "Best"), ("worst", "Worst")):
        if m[key]:
            out.append(f'<div id="{key}"><h3>{label}</h3><div class="grid-cards compact">')
            out.extend(card(x, lazy=False) for x in m[key])
            out.append("</div></div>")
    out.append("</section>")
    return "".join(out)


def _gallery(m: dict) -> str:
    gal = m["gallery"]
    if not gal:
        return ""
    total = m["gallery_total"]
    note = f"{len(gal)} of {total} images (evenly sampled)" if total > len(gal) else f"{len(gal)} images"
    def pager(pid):
        return (f'<div class="pager" id="{pid}" hidden><button class="prev" type="button">previous</button>'
                '<span class="where"></span><button class="next" type="button">next</button></div>')

    out = [f'<section id="gallery"><h2>Gallery</h2><p class="muted">{note}; drag a slider to compare '
           'the gray input with the colorized result.</p>', pager("gallery-pager"),
           f'<div class="grid-cards" id="gallery-grid" data-page-size="{PAGE_SIZE}" '
           'data-pager="gallery-pager gallery-pager-bottom">']
    out.extend(card(x) for x in gal)
    out.append("</div>" + pager("gallery-pager-bottom") + "</section>")
    return "".join(out)


def render(m: dict) -> str:
    s = m["summary"]
    status = str(s.get("status") or "unknown")
    sections = [
        _summary(m), _failures(m), _training(m), _best_worst(m), _evaluation(m), _gallery(m),
    ]
    toc = [(sid, label) for sid, label, body in (
        ("summary", "Summary", sections[0]), ("failures-section", "Failures", sections[1]),
        ("training", "Training", sections[2]), ("best-worst", "Best and worst", sections[3]),
        ("evaluation", "Evaluation", sections[4]), ("gallery", "Gallery", sections[5])) if body]
    title = m["title"]
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{e(title)}</title><style>{asset('report.css')}</style></head><body>",
        f'<header class="top"><h1>{e(title)} <span class="badge {e(status)}" id="status">{e(status)}</span></h1>',
        f'<div class="sub">{e(s.get("recipe") or "")} · {e(s.get("started") or "")} · '
        f'{e(duration(s.get("seconds")))}</div></header>',
        '<nav class="toc">' + "".join(f'<a href="#{sid}">{label}</a>' for sid, label in toc) + "</nav>",
        "<main>", *sections, "</main>",
        f'<footer>generated {e(m["generated"])} by colorbatch-report {e(m["version"])}; '
        'machine-readable summary: report.json</footer>',
        f"<script>{asset('report.js')}</script></body></html>\n",
    ])
