"""Progress users can plan with (issue 13): when the load step knows how many items come,
the item-counting tasks (colorize, the run's items) show that total, less the items that
failed or were skipped, so the bar gives a percentage and an ETA; an unbounded source
leaves the total unknown."""
from __future__ import annotations

import io

import pytest
from pydantic import BaseModel, ConfigDict

from colorbatch import hookimpl, registry
from colorbatch.errors import ItemError
from colorbatch.item import Item
from colorbatch.plugins import make_plugin_manager
from colorbatch.recipe import build_plan
from colorbatch.runner import RunContext, execute
from colorbatch.sources import SourceDef
from colorbatch.steps import ItemStep, StepDef
from colorbatch.testing import save_tiny_image


class CountOpts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fail: list[str] = []
    done: list[str] = []


class Count(ItemStep):
    """Counts items in its own task; fails the ones named in ``fail``."""

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.task = None

    def run(self, items):
        self.task = self.ctx.task("count", unit="images", counts_items=True)
        for item in items:
            if item.is_marker:
                yield item
                continue
            if item.id in self.options.fail:
                self.ctx.fail(item, ItemError("refused"))
                continue
            self.task.advance(1)
            yield item


class Done(ItemStep):
    """An output step whose ``done`` items are skipped (resume)."""

    def is_done(self, item):
        return item.id in self.options.done

    def process(self, item):
        return item


def endless(source, options, ctx):
    """An unbounded source: items from a generator (as a watched folder gives them)."""
    for i in range(3):
        yield Item(id=f"e{i}.png")


class Steps:
    @hookimpl
    def colorbatch_register_steps(self):
        return [
            StepDef("count", lambda: CountOpts, Count),
            StepDef("done", lambda: CountOpts, Done),
        ]

    @hookimpl
    def colorbatch_register_sources(self):
        return [SourceDef("endless", endless)]


def _run(tmp_path, steps):
    from rich.console import Console

    pm = make_plugin_manager(no_plugins=True, extra=[Steps()])
    raw = {"schema_version": 1, "name": "t", "run_dir": str(tmp_path / "run"), "steps": steps}
    plan = build_plan(raw, registry.steps(pm), label="t.toml", base_dir=tmp_path)
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    ctx = RunContext(plan, pm, console=console, show_progress=True)
    summary = execute(ctx)
    tasks = {t.description: t for t in ctx._progress.tasks}
    return summary, tasks, console.file.getvalue()


@pytest.fixture
def folder(tmp_path):
    src = tmp_path / "in"
    for i in range(7):
        save_tiny_image(src / f"p{i}.png", seed=i)
    return src


def test_a_listed_folder_gives_the_tasks_their_total(tmp_path, folder):
    summary, tasks, text = _run(tmp_path, [{"uses": "load", "with": {"source": str(folder)}}, {"uses": "count"}])
    assert summary["ok"] == 7
    for name in ("count", "items"):
        assert tasks[name].total == 7 and tasks[name].completed == 7
    assert "7/7" in text and "100%" in text


def test_limit_failures_and_skips_come_off_the_total(tmp_path, folder):
    steps = [
        {"uses": "load", "with": {"source": str(folder), "limit": 6}},
        {"uses": "count", "with": {"fail": ["p1.png"]}},
        {"uses": "done", "with": {"done": ["p2.png", "p3.png"]}},
    ]
    summary, tasks, _ = _run(tmp_path, steps)
    assert summary["ok"] == 3 and summary["failed"] == 1
    # done items are skipped right after load (before any work): 6 - 2 skipped - 1 failed
    assert tasks["count"].total == 3 and tasks["count"].completed == 3
    assert tasks["items"].total == 3 and tasks["items"].completed == 3


def test_an_unbounded_source_leaves_the_total_unknown(tmp_path):
    steps = [{"uses": "load", "with": {"source": "x", "layout": "endless"}}, {"uses": "count"}]
    summary, tasks, _ = _run(tmp_path, steps)
    assert summary["ok"] == 3
    assert tasks["count"].total is None and tasks["items"].total is None


def test_colorize_over_a_folder_reports_its_total(tmp_path, folder):
    """The real colorize step: its task's total is the number of images in the folder."""
    from colorbatch.models import build_model
    from colorbatch.models.checkpoint import save_checkpoint

    model = build_model("efficientnet-lite0", "none", widths=(32, 16, 16, 16, 16))
    ckpt = save_checkpoint(tmp_path / "tiny.safetensors", model, {"test": True})
    steps = [
        {"uses": "load", "with": {"source": str(folder)}},
        {"uses": "colorize", "with": {"model": str(ckpt), "size": 32, "workers": 0}},
        {"uses": "save", "with": {"out": str(tmp_path / "out")}},
    ]
    summary, tasks, _ = _run(tmp_path, steps)
    assert summary["ok"] == 7
    assert tasks["colorize"].total == 7 and tasks["colorize"].completed == 7
    assert tasks["items"].total == 7
