"""Build the report folder: ``index.html``, ``report.json`` and ``thumbs/``."""
from __future__ import annotations

import json
import time
from pathlib import Path

from colorbatch_report import __version__
from colorbatch_report.render import render
from colorbatch_report.rundata import RunData, finite, rank_metric, read_run_folder
from colorbatch.api import atomic_write_bytes
from colorbatch_report.thumbs import Thumbnails, existing

HTML_NAME = "index.html"
JSON_NAME = "report.json"
THUMBS = "thumbs"
BEST_WORST = 6
DEFAULT_MAX_GALLERY = 240
DEFAULT_THUMB = 192


def sample_evenly(items: list, k: int) -> list:
    """``k`` items spread evenly over ``items`` (first and last included)."""
    n = len(items)
    if n <= k:
        return list(items)
    if k <= 1:
        return items[:k]
    return [items[round(i * (n - 1) / (k - 1))] for i in range(k)]


def best_and_worst(rows: list[dict], k: int = BEST_WORST):
    rank = rank_metric(rows)
    if rank is None:
        return None, [], []
    name, higher = rank
    scored = [r for r in rows if finite(r.get(name))]
    scored.sort(key=lambda r: r[name], reverse=higher)
    n = len(scored)
    kb = min(k, (n + 1) // 2)  # small runs: split them, never show one image twice
    kw = min(k, n - kb)
    best = scored[:kb]
    worst = list(reversed(scored[n - kw:])) if kw else []
    return {"metric": name, "higher_is_better": higher}, best, worst


def _best_epoch(epochs: list[dict]):
    val = [ep for ep in epochs if finite(ep.get("val_loss"))]
    return min(val, key=lambda ep: ep["val_loss"]) if val else None


def _thumb_entry(item: str, thumbs: Thumbnails, data: RunData, rows_by_item: dict, make: bool) -> dict | None:
    have = existing(thumbs.index, thumbs.folder, item)
    saved = data.saved.get(item)
    if make and saved and not {"gray", "color"} <= set(have):
        have = thumbs.add_files(item, saved.get("input"), saved.get("output"))
    if not have:
        return None
    entry = {
        "item": item,
        "thumbs": {r: f"{THUMBS}/{n}" for r, n in have.items()},
        "metrics": rows_by_item.get(item) or {},
    }
    if item in thumbs.hints:
        entry["hints"] = thumbs.hints[item]
    return entry


def build_model(data: RunData, out: Path, *, title: str | None, thumbs: Thumbnails, max_gallery: int) -> dict:
    rows_by_item = {r["item"]: r for r in data.metrics}
    rank, best, worst = best_and_worst(data.metrics)

    def entries(items):
        got = (_thumb_entry(i, thumbs, data, rows_by_item, True) for i in items)
        return [x for x in got if x is not None]

    # every item we could show, in a stable order: saved first (run order), then
    # items that only have thumbnails
    if thumbs.gallery:
        pool = list(thumbs.gallery)  # the report step's sample
    else:
        candidates: dict[str, None] = dict.fromkeys(data.saved)
        for item in thumbs.index:
            candidates.setdefault(item, None)
        pool = list(candidates)
    chosen = sample_evenly(pool, max(0, int(max_gallery)))
    gallery = entries(chosen)
    best_e = entries(r["item"] for r in best)
    worst_e = entries(r["item"] for r in worst)
    # rows without pictures still count in best / worst
    for lst, rows in ((best_e, best), (worst_e, worst)):
        have = {x["item"] for x in lst}
        for r in rows:
            if r["item"] not in have:
                lst.append({"item": r["item"], "thumbs": {}, "metrics": r})
        order = {r["item"]: i for i, r in enumerate(rows)}
        lst.sort(key=lambda x: order.get(x["item"], 0))

    s = data.summary
    return {
        "title": title or f"colorbatch report: {s.get('recipe') or (data.run_dir.name if data.run_dir else 'run')}",
        "generated": time.strftime("%Y-%m-%d %H:%M:%S"),
        "version": __version__,
        "final": data.final,
        "summary": s,
        "recipe": data.recipe,
        "epochs": data.epochs,
        "best_epoch": _best_epoch(data.epochs),
        "metrics": data.metrics,
        "aggregate": data.aggregate,
        "metrics_source": data.metrics_source,
        "rank": rank,
        "best": best_e,
        "worst": worst_e,
        "gallery": gallery,
        "gallery_total": len(pool),
        "failures": data.failures,
        "notes": data.notes,
    }


def report_json(m: dict) -> dict:
    """The machine-readable summary written next to the HTML."""
    s = m["summary"]
    keys = ("recipe", "source", "status", "error", "ok", "failed", "skipped", "seconds", "rate",
            "device", "started", "versions", "steps", "run_dir", "world_size")
    return {
        "schema_version": 1,
        "title": m["title"],
        "generated": m["generated"],
        "generator": f"colorbatch-report {m['version']}",
        "final": m["final"],
        "run": {k: s.get(k) for k in keys if k in s},
        "failures": m["failures"],
        "training": {
            "epochs": len(m["epochs"]),
            "best_epoch": m["best_epoch"],
            "last_epoch": m["epochs"][-1] if m["epochs"] else None,
        },
        "evaluation": {
            "source": m["metrics_source"],
            "items": len(m["metrics"]),
            "aggregate": m["aggregate"],
            "ranked_by": m["rank"],
            "best": [{"item": x["item"], **{k: v for k, v in x["metrics"].items() if k != "item"}} for x in m["best"]],
            "worst": [{"item": x["item"], **{k: v for k, v in x["metrics"].items() if k != "item"}} for x in m["worst"]],
        },
        "gallery": {"shown": len(m["gallery"]), "total": m["gallery_total"],
                    "with_hints": sum(1 for x in m["gallery"] if x.get("hints"))},
        "files": {"html": HTML_NAME, "thumbnails": THUMBS + "/"},
        "notes": m["notes"],
    }


def write_report(
    data: RunData,
    out: Path,
    *,
    title: str | None = None,
    thumbnail_size: int = DEFAULT_THUMB,
    thumbnail_format: str = "jpeg",
    max_gallery: int = DEFAULT_MAX_GALLERY,
    thumbs: Thumbnails | None = None,
) -> Path:
    """Write the report for ``data`` into folder ``out``; return the HTML path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if thumbs is None:
        thumbs = Thumbnails(out / THUMBS, thumbnail_size, thumbnail_format)
        thumbs.load_index()
    m = build_model(data, out, title=title, thumbs=thumbs, max_gallery=max_gallery)
    html = render(m)
    if thumbs.index or thumbs.hints:
        thumbs.save_index()
    atomic_write_bytes(out / JSON_NAME, (json.dumps(report_json(m), indent=2, default=str) + "\n").encode("utf-8"))
    path = out / HTML_NAME
    atomic_write_bytes(path, html.encode("utf-8"))
    return path


def build_from_folder(run_dir: Path, out: Path | None = None, **options) -> Path:
    """``colorbatch report RUN_DIR``: rebuild the report from a run folder."""
    run_dir = Path(run_dir)
    data = read_run_folder(run_dir)
    return write_report(data, Path(out) if out else run_dir / "report", **options)
