"""The ``report`` step: passes items through, thumbnails a sample, writes the report.

During the stream it keeps thumbnails of an even random sample of items
(reservoir sampling, at most ``max_gallery``) plus the current best and worst
images by PSNR gain over gray (when an ``evaluate`` step ran before it), made
from the items' arrays, so no file is decoded twice and items need not be saved.

At ``close()`` it writes a provisional report (the runner writes ``run.json``
only after the steps close); the plugin's ``colorbatch_run_finished`` hook then
rewrites it with the final summary.
"""
from __future__ import annotations

import heapq
import random
import re
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from colorbatch.api import Step, StepDef
from colorbatch_report import build
from colorbatch_report import hints as hint_marks
from colorbatch_report.rundata import (
    add_gains,
    assemble,
    finite,
    rank_metric,
    read_json,
    read_jsonl,
)
from colorbatch_report.thumbs import Thumbnails

# run id -> live state (collected events, step instances); see plugin.py
LIVE: dict[int, "Live"] = {}
# what a live report needs from the events; "saved" and "item_skipped" are not
# kept (one per item: memory would grow with the run; the step has its own sample)
EVENT_NAMES = {"run_started", "epoch", "metrics", "step_finished", "evaluation"}


class Live:
    """What the observers collected for one run in this process."""

    def __init__(self):
        self.records: list[dict] = []
        self.steps: list["ReportStep"] = []

    def add(self, name: str, data: dict) -> None:
        if name in EVENT_NAMES:
            self.records.append({"event": name, **data})


def has_report_step(run) -> bool:
    plan = getattr(run, "plan", None)
    return any(getattr(s, "uses", None) == "report" for s in getattr(plan, "steps", []) or [])


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out: str = Field("{run_dir}/report", description="Folder for index.html, report.json and thumbs/.")
    title: Optional[str] = Field(None, description="Page title (default: 'colorbatch report: <recipe>').")
    thumbnail_size: int = Field(build.DEFAULT_THUMB, ge=32, le=1024,
                                description="Longest side of the gallery thumbnails in pixels.")
    thumbnail_format: Literal["jpeg", "webp"] = Field("jpeg", description="Thumbnail format: jpeg or webp.")
    max_gallery: int = Field(build.DEFAULT_MAX_GALLERY, ge=0, le=5000,
                             description="Most images in the gallery; larger runs are sampled evenly.")


class ReportStep(Step):
    def __init__(self, options: Options, ctx):
        super().__init__(options, ctx)
        self.out = Path(options.out)
        self.thumbs = Thumbnails(self.out / build.THUMBS, options.thumbnail_size, options.thumbnail_format)
        self.rng = random.Random(0)
        self.seen = 0
        self.sample: list[str] = []
        self.position: dict[str, int] = {}
        self.best: list[tuple] = []  # min-heap of (score, seq, id): the k highest scores
        self.worst: list[tuple] = []  # min-heap of (-score, seq, id): the k lowest scores
        self.rank: tuple[str, bool] | None = None
        self.thumb_errors = 0
        self.written: Path | None = None
        self.active = ctx.is_main
        live = LIVE.get(id(ctx))
        if live is not None:
            live.steps.append(self)

    # ---- stream -----------------------------------------------------------------
    def run(self, items):
        for item in items:
            if self.active and not item.is_marker:
                try:
                    self._track(item)
                except Exception as exc:  # noqa: BLE001 - a report never fails an item
                    self.thumb_errors += 1
                    if self.thumb_errors == 1:
                        self.ctx.warn(f"report: no thumbnail for {item.label}: {exc}")
            yield item

    def _keep(self) -> set[str]:
        return set(self.sample) | {x[2] for x in self.best} | {x[2] for x in self.worst}

    def _track(self, item) -> None:
        self.seen += 1
        key = item.id
        wanted = False
        evicted: list[str] = []
        k = max(0, int(self.options.max_gallery))
        if len(self.sample) < k:
            self.sample.append(key)
            wanted = True
        elif k:
            j = self.rng.randrange(self.seen)
            if j < k:
                evicted.append(self.sample[j])
                self.sample[j] = key
                wanted = True
        if item.metrics:
            row = add_gains({"item": key, **item.metrics})
            if self.rank is None:
                self.rank = rank_metric([row])
            if self.rank is not None and finite(row.get(self.rank[0])):
                score = float(row[self.rank[0]]) * (1 if self.rank[1] else -1)
                for heap, s in ((self.best, score), (self.worst, -score)):
                    entry = (s, self.seen, key)
                    if len(heap) < build.BEST_WORST:
                        heapq.heappush(heap, entry)
                        wanted = True
                    elif entry > heap[0]:
                        evicted.append(heapq.heapreplace(heap, entry)[2])
                        wanted = True
        if wanted:
            self.position[key] = self.seen
            self.thumbs.add_arrays(key, L=item.L, rgb=item.rgb, output=item.output)
            record = hint_marks.from_item(item)
            if record is not None:
                self.thumbs.hints[key] = record
        if evicted:
            keep = self._keep()
            for old in evicted:
                if old not in keep:
                    self.thumbs.forget(old)
                    self.position.pop(old, None)

    # ---- the report -------------------------------------------------------------
    def _summary(self) -> dict:
        """The run so far, as the core summarises it (``RunSummary``, status "running")."""
        from colorbatch.api import RunSummary

        ctx = self.ctx
        last = ctx.plan.steps[-1].id if ctx.plan.steps else None
        ok = ctx.stats[last].produced if last in ctx.stats else self.seen
        return RunSummary.of(ctx, status="running", ok=ok).to_dict()

    def _records(self) -> list[dict]:
        live = LIVE.get(id(self.ctx))
        if live is not None:
            return live.records
        run_dir = self.ctx.run_dir
        if run_dir is not None:
            from colorbatch_report.rundata import last_run

            return last_run(read_jsonl(Path(run_dir) / "events.jsonl", []))
        return []

    def _fresh(self, path: Path) -> bool:
        try:
            return path.stat().st_mtime >= self.ctx.started - 1
        except OSError:
            return False

    def write(self, summary: dict | None = None) -> Path | None:
        """Write the report (provisional without ``summary``); return the HTML path."""
        if not self.active:
            return None
        ctx = self.ctx
        notes: list[str] = []
        recipe = ctx.plan.to_dict()
        run_dir = Path(ctx.run_dir) if ctx.run_dir else None
        produced = {p for s in ctx.plan.steps for p in getattr(s.stepdef, "produces", ())}
        train_log = read_jsonl(run_dir / "train_log.jsonl", notes) if run_dir and "checkpoint" in produced else []
        metrics_file = None
        if "metrics" in produced:
            for cfg in ctx.plan.steps:
                if "metrics" in cfg.stepdef.produces and isinstance(getattr(cfg.options, "out", None), str):
                    folder = Path(cfg.options.out)
                    path = folder if folder.suffix.lower() == ".json" else folder / "metrics.json"
                    if self._fresh(path):
                        metrics_file = read_json(path, notes)
                        break
        if summary is not None:
            summary = {k: v for k, v in summary.items() if not k.startswith("_")}
        data = assemble(
            self._records(),
            run_dir=run_dir,
            summary=summary or self._summary(),
            recipe=recipe,
            extra_epochs=train_log,
            metrics_file=metrics_file if isinstance(metrics_file, dict) else None,
            notes=notes,
        )
        data.final = summary is not None
        # the gallery is what this step sampled; the stream's own order
        keep = self._keep()
        for item in list(self.thumbs.index):
            if item not in keep:
                self.thumbs.forget(item)
        # the gallery is this step's sample, in stream order (kept in thumbs/index.json,
        # so `colorbatch report` shows the same one)
        self.thumbs.gallery = sorted(self.sample, key=lambda k: self.position.get(k, 0))
        self.thumbs.flush()
        if self.thumb_errors:
            data.notes.append(f"{self.thumb_errors} item(s) had no thumbnail (see the run's warnings)")
        self.written = build.write_report(
            data, self.out, title=self.options.title, max_gallery=self.options.max_gallery, thumbs=self.thumbs
        )
        if summary is not None:
            _prune(self.thumbs)
        return self.written

    def close(self) -> None:
        if not self.active:
            return
        if id(self.ctx) not in LIVE and not getattr(self.ctx, "write_run_files", False):
            return  # built outside a run (a dry run lists inputs): write nothing
        try:
            self.write()
        except Exception as exc:  # noqa: BLE001 - a report never fails a run
            self.ctx.warn(f"report: could not write the report: {exc}")


_THUMB_RE = re.compile(r"^[0-9a-f]{16}-(gray|color|truth)\.(jpg|webp)$")


def _prune(thumbs: Thumbnails) -> None:
    """Delete thumbnails of earlier runs in this folder that nothing references."""
    used = {n for roles in thumbs.index.values() for n in roles.values()}
    try:
        names = [p for p in thumbs.folder.iterdir() if _THUMB_RE.match(p.name) and p.name not in used]
    except OSError:
        return
    for p in names:
        try:
            p.unlink()
        except OSError:
            pass


STEP = StepDef(
    name="report",
    options=lambda: Options,
    factory=ReportStep,
    help="Write an HTML report of the run (summary, training curves, metrics, gallery); passes items on.",
    path_options=("out",),
)
