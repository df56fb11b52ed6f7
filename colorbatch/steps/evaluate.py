"""The `evaluate` step: colour-quality metrics against colour ground truth.

Needs items that carry their colour original (``item.rgb``, the load step
fills it for colour inputs) and a prediction (``item.ab``, from ``colorize``).
Per item it sets ``item.metrics`` (see :mod:`colorbatch.metrics`) and emits a
``metrics`` event; at the end it writes ``metrics.json`` (aggregate + items)
and ``metrics.csv`` (one row per image) and prints a short table on stderr.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from colorbatch.errors import ItemError
from colorbatch.steps import ItemStep, StepDef


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    out: str = Field("{run_dir}", description="Folder for metrics.json and metrics.csv (default: the run folder).")
    table: bool = Field(True, description="Print a short table of the aggregate figures on stderr.")
    name: Optional[str] = Field(None, description="Label stored in metrics.json (default: the model id).")
    compare: Optional[str] = Field(
        None, description="Also score another model on the same images and print it beside this one: "
        "'shipped' (the default model that ships with colorbatch) or a checkpoint path.")
    compare_size: int = Field(512, ge=32, le=4096, description="Network resolution for the compared model.")


def _atomic_write(path: Path, text: str) -> None:
    from colorbatch.atomic import atomic_write_text

    atomic_write_text(path, text)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if abs(v) < 0.1 and v != 0:
        return f"{v:.5f}"
    return f"{v:.2f}" if abs(v) < 1000 else f"{v:.0f}"


class EvaluateStep(ItemStep):
    def __init__(self, options: Options, ctx):
        super().__init__(options, ctx)
        self.rows: list[dict] = []
        self.written: Path | None = None

    def process(self, item):
        from colorbatch.metrics import image_metrics

        if item.rgb is None:
            raise ItemError(f"{item.label}: no colour ground truth (the input is gray); evaluate needs colour images")
        if item.ab is None:
            raise ItemError(f"{item.label}: no predicted a*b*; put a colorize step before evaluate")
        m = image_metrics(item.rgb, item.ab)
        item.metrics.update(m)
        row = {"item": item.id, **{k: round(v, 6) for k, v in m.items()}}
        if self.options.compare:
            self._compare_item(item, row)
        self.rows.append(row)
        self.ctx.event("metrics", row)
        return item

    # ---- the compared model ------------------------------------------------------
    def _compare_model(self):
        if getattr(self, "_cmp", None) is None:
            from colorbatch.colorizer import Colorizer
            from colorbatch.errors import ColorbatchError
            from colorbatch.models.checkpoint import shipped_model

            want = self.options.compare
            path = shipped_model() if want == "shipped" else want
            if path is None:
                self.ctx.warn("evaluate: compare = 'shipped', but this installation has no shipped default model")
                self._cmp = False
            else:
                try:
                    self._cmp = Colorizer(path, "auto", self.options.compare_size, 1)
                except ColorbatchError as exc:
                    self.ctx.warn(f"evaluate: cannot compare with {want}: {exc}")
                    self._cmp = False
        return self._cmp

    def _compare_item(self, item, row: dict) -> None:
        from colorbatch.metrics import image_metrics, rgb_to_lab

        col = self._compare_model()
        if not col:
            return
        L = rgb_to_lab(item.rgb)[..., 0]
        m = image_metrics(item.rgb, col.predict_ab([L])[0])
        row.update({"compare_" + k: round(m[k], 6) for k in ("psnr", "colorfulness", "ab_mse")})

    def _print_comparison(self, rows: list[dict]) -> None:
        import numpy as np

        def stats(key):
            v = np.array([r[key] for r in rows], dtype=np.float64)
            return v.mean(), float(np.median(v))

        gray = np.array([r["gray_psnr"] for r in rows])
        lines = [f"side by side on these {len(rows)} photos (PSNR dB mean / median; colourfulness mean, truth "
                 f"{stats('colorfulness_gt')[0]:.1f}):"]
        lines.append(f"  {'gray input':28s} {gray.mean():6.2f} / {np.median(gray):6.2f}")
        for label, p in ((f"this run: {self.ctx.state.model_id or 'model'}"[:28], ""),
                         (f"{self.options.compare}: {self._cmp.model_id}"[:28], "compare_")):
            ps = np.array([r[p + "psnr"] for r in rows])
            beat = int((ps > gray).sum())
            lines.append(f"  {label:28s} {ps.mean():6.2f} / {np.median(ps):6.2f}  colourfulness "
                         f"{stats(p + 'colorfulness')[0]:5.1f}  beats gray on {beat}/{len(rows)}")
        for line in lines:
            self.ctx.log(line)

    # ---- end of stream ---------------------------------------------------------
    def _gather(self) -> list[dict]:
        rows = self.rows
        if self.ctx.distributed:  # under torchrun each rank scored its shard: collect them on rank 0
            import torch.distributed as dist

            if dist.is_available() and not dist.is_initialized():
                dist.init_process_group(backend="gloo")
            if dist.is_available() and dist.is_initialized():
                parts: list = [None] * dist.get_world_size()
                dist.all_gather_object(parts, rows)
                rows = [r for p in parts for r in (p or [])]
        return sorted(rows, key=lambda r: r["item"])

    def close(self) -> None:
        from colorbatch.metrics import aggregate, metric_names

        rows = self._gather()
        if not self.ctx.is_main or not rows:
            return
        agg = aggregate(rows)
        out = Path(self.options.out)
        report = {
            "name": self.options.name or self.ctx.state.model_id,
            "model": str(self.ctx.state.model) if self.ctx.state.model else None,
            "aggregate": agg,
            "items": rows,
        }
        _atomic_write(out / "metrics.json", json.dumps(report, indent=2) + "\n")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["item", *metric_names()], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        _atomic_write(out / "metrics.csv", buf.getvalue())
        self.written = out / "metrics.json"
        self.ctx.state.metrics = self.written
        self.ctx.event("evaluation", {"images": len(rows), "metrics": str(self.written),
                                      **{k: agg[k]["mean"] for k in ("ab_mse", "gray_ab_mse", "psnr", "gray_psnr")}})
        if self.options.table and not self.ctx.json_mode:
            self.ctx.console.print(render_table(agg))
        self.ctx.log(f"metrics: {self.written} and metrics.csv ({len(rows)} images)")
        if self.options.compare and getattr(self, "_cmp", None):
            self._print_comparison(rows)


def render_table(agg: dict):
    """A compact rich table: each metric's mean / median beside the gray baseline's."""
    from rich.table import Table

    t = Table(title=f"evaluation: {agg['images']} images (gray = a*b* 0 baseline)", title_justify="left")
    for col in ("metric", "model mean / median", "p10..p90", "gray mean / median"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    for m, label in (
        ("ab_mse", "ab MSE"),
        ("psnr", "PSNR dB"),
        ("ssim", "SSIM"),
        ("colorfulness", "colourfulness"),
        ("colorfulness_gap", "colourf. gap"),
    ):
        a, g = agg[m], agg["gray_" + m]
        t.add_row(label, f"{_fmt(a['mean'])} / {_fmt(a['median'])}", f"{_fmt(a['p10'])}..{_fmt(a['p90'])}",
                  f"{_fmt(g['mean'])} / {_fmt(g['median'])}")
    gt = agg["colorfulness_gt"]
    t.add_row("truth colourf.", f"{_fmt(gt['mean'])} / {_fmt(gt['median'])}", "", "")
    if agg.get("better_than_gray") is not None:
        t.caption = (f"PSNR gain over gray: mean {_fmt(agg['psnr_gain']['mean'])} dB, median "
                     f"{_fmt(agg['psnr_gain']['median'])} dB; {agg['better_than_gray']:.0%} of images beat gray")
        t.caption_justify = "left"
    return t


STEP = StepDef(
    name="evaluate",
    options=lambda: Options,
    factory=EvaluateStep,
    help="Score colorized images against their colour originals (ab MSE, PSNR, SSIM, colourfulness; gray baseline beside each).",
    path_options=("out",),
    produces=("metrics",),
)
