"""Synthetic run folders for tests and benchmarks (no model, no training).

``make_run_folder(path, ...)`` writes what a train + colorize + evaluate + save
run leaves behind: run.json, recipe.json, events.jsonl, train_log.jsonl,
metrics.json, metrics.csv, small colour input PNGs and "colorized" outputs.
Each file can be left out to test degraded runs.
"""
from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

METRIC_FIELDS = ("ab_mse", "gray_ab_mse", "psnr", "gray_psnr", "ssim", "gray_ssim",
                 "colorfulness_gt", "colorfulness", "gray_colorfulness", "colorfulness_gap")


def _image(rng: random.Random, size: int):
    """A small colourful picture: two-colour gradient plus a disc."""
    import numpy as np

    h, w = size, int(size * rng.uniform(1.0, 1.5))
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    c1 = np.array([rng.random() for _ in range(3)], np.float32)
    c2 = np.array([rng.random() for _ in range(3)], np.float32)
    t = (x / max(w - 1, 1))[..., None]
    img = c1 * (1 - t) + c2 * t
    cy, cx, r = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w, size * 0.25
    disc = ((y - cy) ** 2 + (x - cx) ** 2) < r * r
    img[disc] = np.array([rng.random() for _ in range(3)], np.float32)
    return (img * 255).astype(np.uint8)


def metrics_row(rng: random.Random, item: str) -> dict:
    gray_psnr = rng.uniform(18, 30)
    psnr = gray_psnr + rng.uniform(-4, 5)
    gray_mse = 10 ** (-gray_psnr / 10) * 4
    cgt = rng.uniform(10, 60)
    col = cgt * rng.uniform(0.5, 1.1)
    return {
        "item": item,
        "ab_mse": round(10 ** (-psnr / 10) * 4, 6),
        "gray_ab_mse": round(gray_mse, 6),
        "psnr": round(psnr, 6),
        "gray_psnr": round(gray_psnr, 6),
        "ssim": round(rng.uniform(0.7, 0.99), 6),
        "gray_ssim": round(rng.uniform(0.7, 0.95), 6),
        "colorfulness_gt": round(cgt, 6),
        "colorfulness": round(col, 6),
        "gray_colorfulness": 0.0,
        "colorfulness_gap": round(col - cgt, 6),
    }


def _summarize(vals: list[float]) -> dict:
    v = sorted(vals)
    n = len(v)
    if not n:
        return {k: None for k in ("mean", "median", "std", "p10", "p90", "min", "max")}
    mean = sum(v) / n
    return {"mean": mean, "median": v[n // 2], "std": math.sqrt(sum((x - mean) ** 2 for x in v) / n),
            "p10": v[int(0.1 * (n - 1))], "p90": v[int(0.9 * (n - 1))], "min": v[0], "max": v[-1]}


def make_run_folder(
    path: Path,
    *,
    items: int = 12,
    images: int | None = None,
    epochs: int = 5,
    failures: int = 2,
    skipped: int = 1,
    size: int = 48,
    seed: int = 0,
    files: tuple[str, ...] = ("run.json", "recipe.json", "events.jsonl", "train_log.jsonl",
                              "metrics.json", "metrics.csv"),
) -> dict:
    """Write a synthetic run folder; return what was written (for assertions)."""
    import numpy as np
    from PIL import Image

    rng = random.Random(seed)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    images = items if images is None else images
    inputs, outputs = path / "inputs", path / "colorized"
    ids = [f"photos/img_{i:05d}.png" for i in range(items)]
    saved = []
    for i, item in enumerate(ids[:images]):
        rgb = _image(rng, size)
        src = inputs / item
        dst = outputs / item
        src.parent.mkdir(parents=True, exist_ok=True)
        dst.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb).save(src)
        gray = rgb.mean(axis=2, keepdims=True)
        fake = np.clip(gray + (rgb - gray) * 0.6 + np.array([12, 4, -8]), 0, 255).astype(np.uint8)
        Image.fromarray(fake).save(dst)
        saved.append({"item": item, "input": str(src), "output": str(dst), "kind": "image"})
    rows = [metrics_row(rng, item) for item in ids]
    epoch_rows = []
    train, val = 0.03, 0.032
    for ep in range(1, epochs + 1):
        train *= rng.uniform(0.8, 0.95)
        val *= rng.uniform(0.85, 1.02)
        epoch_rows.append({"epoch": ep, "train_loss": round(train, 6), "val_loss": round(val, 6),
                           "lr": 1e-3 * 0.9 ** ep, "seconds": round(rng.uniform(20, 30), 2),
                           "images_per_s": round(rng.uniform(9, 12), 2)})
    fail = [{"item": str(inputs / f"broken_{i}.jpg"), "step": "load",
             "error": f"{inputs / f'broken_{i}.jpg'}: truncated JPEG file <bad & \"quoted\">"}
            for i in range(failures)]
    skip = [{"item": f"photos/done_{i}.png", "reason": "output exists"} for i in range(skipped)]
    steps = {
        "load": {"in": 0, "out": items, "ok": items, "failed": failures, "skipped": skipped, "seconds": 1.2},
        "train": {"in": items, "out": items, "ok": items, "failed": 0, "skipped": 0, "seconds": 120.5},
        "colorize": {"in": items, "out": items, "ok": items, "failed": 0, "skipped": 0, "seconds": 30.1},
        "evaluate": {"in": items, "out": items, "ok": items, "failed": 0, "skipped": 0, "seconds": 5.0},
        "save": {"in": items, "out": items, "ok": items, "failed": 0, "skipped": 0, "seconds": 2.0},
    }
    versions = {"colorbatch": "0.1.0", "python": "3.11.2", "torch": "2.4.0"}
    summary = {
        "recipe": "synthetic", "source": "synthetic.toml", "status": "items_failed" if failures else "ok",
        "error": None, "ok": items, "failed": failures, "skipped": skipped, "seconds": 163.4,
        "rate": round(items / 163.4, 3), "steps": steps, "failures": fail,
        "state": {"model_id": "demo-model@1234", "checkpoint": str(path / "checkpoints" / "best.safetensors")},
        "run_dir": str(path), "versions": versions, "device": "cpu", "started": "2026-01-02T03:04:05",
        "world_size": 1, "exit_code": 1 if failures else 0,
    }
    recipe = {"schema_version": 1, "name": "synthetic", "source": "synthetic.toml", "run_dir": str(path),
              "steps": [{"id": s, "uses": s, "with": {}} for s in steps]}
    events = [{"t": 0.0, "event": "run_started", "recipe": "synthetic", "source": "synthetic.toml",
               "versions": versions}]
    events += [{"t": 1.0, "event": "item_failed", **f} for f in fail]
    events += [{"t": 1.1, "event": "item_skipped", **s} for s in skip]
    events += [{"t": 2.0 + e["epoch"], "event": "epoch", **e} for e in epoch_rows]
    events += [{"t": 50.0, "event": "metrics", **r} for r in rows]
    events += [{"t": 60.0, "event": "saved", **s} for s in saved]
    events += [{"t": 163.0, "event": "step_finished", "step": k, "uses": k, **v} for k, v in steps.items()]
    events.append({"t": 163.4, "event": "run_finished", "status": summary["status"], "ok": items,
                   "failed": failures, "skipped": skipped, "seconds": 163.4})
    agg = {"images": len(rows), **{k: _summarize([r[k] for r in rows]) for k in METRIC_FIELDS},
           "psnr_gain": _summarize([r["psnr"] - r["gray_psnr"] for r in rows])}
    agg["better_than_gray"] = sum(r["psnr"] > r["gray_psnr"] for r in rows) / max(len(rows), 1)
    content = {
        "run.json": json.dumps(summary, indent=2),
        "recipe.json": json.dumps(recipe, indent=2),
        "events.jsonl": "".join(json.dumps(e) + "\n" for e in events),
        "train_log.jsonl": "".join(json.dumps(e) + "\n" for e in epoch_rows),
        "metrics.json": json.dumps({"name": "demo", "aggregate": agg, "items": rows}, indent=2),
    }
    for name, text in content.items():
        if name in files:
            (path / name).write_text(text, encoding="utf-8")
    if "metrics.csv" in files:
        with open(path / "metrics.csv", "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=["item", *METRIC_FIELDS])
            w.writeheader()
            w.writerows(rows)
    return {"summary": summary, "rows": rows, "epochs": epoch_rows, "failures": fail, "saved": saved,
            "aggregate": agg}
