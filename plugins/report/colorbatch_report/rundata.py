"""Read what a run left in its folder, tolerantly, into one :class:`RunData`.

Every input is optional: a colorize-only run has no epochs or metrics, a
train-only run has no saved images, a crashed run has no ``run.json``. Files
that cannot be parsed are noted (``RunData.notes``) and skipped, never fatal.

``events.jsonl`` is appended to by every run in the same folder, so only the
records after the last ``run_started`` are used.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

ITEM_KEYS = ("item", "id", "path", "name")


@dataclass
class RunData:
    run_dir: Path | None = None
    summary: dict = field(default_factory=dict)
    final: bool = False  # summary is the run's final one (run.json / run_finished)
    recipe: dict | None = None
    epochs: list[dict] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)  # one dict per item, key "item"
    aggregate: dict = field(default_factory=dict)
    metrics_source: str | None = None
    saved: dict[str, dict] = field(default_factory=dict)  # item -> saved event
    failures: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def recipe_steps(self, uses: str) -> list[dict]:
        steps = (self.recipe or {}).get("steps") or []
        return [s for s in steps if isinstance(s, dict) and s.get("uses") == uses]


# --------------------------------------------------------------------------- #
# small tolerant readers
# --------------------------------------------------------------------------- #


def read_json(path: Path, notes: list[str]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        notes.append(f"{path.name}: unreadable ({type(exc).__name__}); ignored")
        return None


def read_jsonl(path: Path, notes: list[str]) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    except OSError as exc:
        notes.append(f"{path.name}: unreadable ({exc.strerror}); ignored")
        return []
    out, bad = [], 0
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(rec, dict):
            out.append(rec)
        else:
            bad += 1
    if bad:
        notes.append(f"{path.name}: {bad} unreadable line(s) skipped")
    return out


def last_run(records: list[dict]) -> list[dict]:
    """The records of the last run in an append-only events log."""
    start = 0
    for i, rec in enumerate(records):
        if rec.get("event") == "run_started":
            start = i
    return records[start:]


def _number(value: Any) -> Any:
    """CSV cells to numbers where they look like numbers."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text == "":
        return None
    try:
        f = float(text)
    except ValueError:
        return value
    return int(f) if f.is_integer() and "." not in text and "e" not in text.lower() else f


def read_csv(path: Path, notes: list[str]) -> list[dict]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [{k: _number(v) for k, v in row.items() if k} for row in csv.DictReader(fh)]
    except FileNotFoundError:
        return []
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        notes.append(f"{path.name}: unreadable ({type(exc).__name__}); ignored")
        return []


def item_key(row: dict) -> str | None:
    for key in ITEM_KEYS:
        value = row.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


# --------------------------------------------------------------------------- #
# derived values
# --------------------------------------------------------------------------- #


def add_gains(row: dict) -> dict:
    """Add ``psnr_gain`` / ``ssim_gain`` (model minus gray baseline) when both exist."""
    for base in ("psnr", "ssim"):
        a, b = row.get(base), row.get(f"gray_{base}")
        if finite(a) and finite(b) and f"{base}_gain" not in row:
            row[f"{base}_gain"] = a - b
    return row


def mean_aggregate(rows: Iterable[dict]) -> dict:
    """mean / median / p10 / p90 / min / max per numeric field (like metrics.json)."""
    values: dict[str, list[float]] = {}
    n = 0
    for row in rows:
        n += 1
        for key, value in row.items():
            if finite(value):
                values.setdefault(key, []).append(float(value))
    agg: dict = {"images": n}
    for key, vals in values.items():
        vals.sort()
        k = len(vals)

        def pct(p):
            pos = (k - 1) * p
            lo = int(pos)
            hi = min(lo + 1, k - 1)
            return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)

        agg[key] = {"mean": sum(vals) / k, "median": pct(0.5), "p10": pct(0.1), "p90": pct(0.9),
                    "min": vals[0], "max": vals[-1]}
    return agg


def rank_metric(rows: list[dict]) -> tuple[str, bool] | None:
    """The metric to call images best / worst by: (name, higher_is_better)."""
    for name, higher in (("psnr_gain", True), ("psnr", True), ("ssim", True), ("ab_mse", False)):
        if any(finite(r.get(name)) for r in rows):
            return name, higher
    return None


# --------------------------------------------------------------------------- #
# assembling
# --------------------------------------------------------------------------- #


def summary_from_events(records: list[dict]) -> dict:
    """What run.json would say, rebuilt from the events of one run."""
    summary: dict = {"status": "unfinished", "steps": {}, "failures": []}
    for rec in records:
        ev = rec.get("event")
        if ev == "run_started":
            summary["recipe"] = rec.get("recipe")
            summary["source"] = rec.get("source")
            if isinstance(rec.get("versions"), dict):
                summary["versions"] = rec["versions"]
        elif ev == "step_finished" and rec.get("step"):
            summary["steps"][str(rec["step"])] = {
                k: v for k, v in rec.items() if k not in ("t", "event", "step")
            }
        elif ev == "item_failed":
            summary["failures"].append(
                {"item": rec.get("item"), "step": rec.get("step"), "error": rec.get("error")}
            )
        elif ev == "run_finished":
            for key in ("status", "ok", "failed", "skipped", "seconds"):
                if key in rec:
                    summary[key] = rec[key]
    if "failed" not in summary:
        summary["failed"] = len(summary["failures"])
    if "seconds" not in summary and records and is_number(records[-1].get("t")):
        summary["seconds"] = records[-1]["t"]
    return summary


def _metrics_paths(data: RunData, run_dir: Path) -> list[Path]:
    """Where evaluate may have written metrics: run folder, or its `out` option."""
    paths = [run_dir / "metrics.json"]
    for step in data.recipe_steps("evaluate"):
        out = (step.get("with") or {}).get("out")
        if isinstance(out, str) and out:
            p = Path(out)
            if not p.is_absolute():
                p = run_dir / p
            paths.insert(0, p if p.suffix.lower() == ".json" else p / "metrics.json")
    return paths


def assemble(
    records: list[dict],
    *,
    run_dir: Path | None = None,
    summary: dict | None = None,
    recipe: dict | None = None,
    extra_epochs: list[dict] | None = None,
    metrics_file: dict | None = None,
    metrics_csv: list[dict] | None = None,
    notes: list[str] | None = None,
) -> RunData:
    """Build :class:`RunData` from the events of one run plus optional files."""
    data = RunData(run_dir=run_dir, recipe=recipe, notes=list(notes or []))
    from_events = summary_from_events(records)
    if summary:
        data.summary = dict(summary)
        data.final = True
        for key, value in from_events.items():
            data.summary.setdefault(key, value)
    else:
        data.summary = from_events

    # epochs: train_log.jsonl first (it spans resumed runs), events add/override
    epochs: dict[Any, dict] = {}
    for rec in list(extra_epochs or []) + [r for r in records if r.get("event") == "epoch"]:
        ep = rec.get("epoch")
        if ep is None:
            continue
        epochs[ep] = {k: v for k, v in rec.items() if k not in ("t", "event")}
    data.epochs = [epochs[k] for k in sorted(epochs, key=lambda e: (not is_number(e), e if is_number(e) else str(e)))]

    # metrics: metrics.json > metrics events > metrics.csv
    rows: list[dict] = []
    if isinstance(metrics_file, dict) and isinstance(metrics_file.get("items"), list):
        rows = [dict(r) for r in metrics_file["items"] if isinstance(r, dict)]
        data.metrics_source = "metrics.json"
        if isinstance(metrics_file.get("aggregate"), dict):
            data.aggregate = dict(metrics_file["aggregate"])
    if not rows:
        rows = [
            {k: v for k, v in r.items() if k not in ("t", "event")}
            for r in records
            if r.get("event") == "metrics"
        ]
        data.metrics_source = "events" if rows else None
    if not rows and metrics_csv:
        rows = [dict(r) for r in metrics_csv]
        data.metrics_source = "metrics.csv"
    clean = []
    for row in rows:
        key = item_key(row)
        if key is None:
            continue
        row["item"] = key
        clean.append(add_gains(row))
    data.metrics = clean
    if clean and not data.aggregate:
        data.aggregate = mean_aggregate({k: v for k, v in r.items() if k != "item"} for r in clean)

    for rec in records:
        ev = rec.get("event")
        if ev == "saved" and isinstance(rec.get("item"), str):
            data.saved[rec["item"]] = {k: v for k, v in rec.items() if k not in ("t", "event")}
        elif ev == "item_skipped":
            data.skipped.append({"item": rec.get("item"), "reason": rec.get("reason")})
    failures = data.summary.get("failures")
    data.failures = [f for f in failures if isinstance(f, dict)] if isinstance(failures, list) else []
    return data


def read_run_folder(run_dir: Path) -> RunData:
    """Everything a finished (or crashed) run left in ``run_dir``."""
    run_dir = Path(run_dir)
    notes: list[str] = []
    summary = read_json(run_dir / "run.json", notes)
    recipe = read_json(run_dir / "recipe.json", notes)
    records = last_run(read_jsonl(run_dir / "events.jsonl", notes))
    train_log = read_jsonl(run_dir / "train_log.jsonl", notes)
    probe = RunData(recipe=recipe if isinstance(recipe, dict) else None)
    metrics_file = None
    metrics_csv = None
    for path in _metrics_paths(probe, run_dir):
        metrics_file = read_json(path, notes)
        if metrics_file is not None:
            break
    if metrics_file is None:
        metrics_csv = read_csv(run_dir / "metrics.csv", notes)
    return assemble(
        records,
        run_dir=run_dir,
        summary=summary if isinstance(summary, dict) else None,
        recipe=recipe if isinstance(recipe, dict) else None,
        extra_epochs=train_log,
        metrics_file=metrics_file if isinstance(metrics_file, dict) else None,
        metrics_csv=metrics_csv,
        notes=notes,
    )
