"""The `report` step inside a real run (runner + hooks), with tiny fake steps."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict
from rich.console import Console

from colorbatch import hookimpl, registry
from colorbatch.item import Item
from colorbatch.plugins import make_plugin_manager
from colorbatch.recipe import build_plan
from colorbatch.runner import run_plan
from colorbatch.steps import ItemStep, Step, StepDef
from colorbatch_report import plugin as report_plugin


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = 6


class FakeLoad(Step):
    """Colour originals (ground truth) with L*, like load + grayscale."""

    def run(self, items):
        rng = np.random.default_rng(0)
        for i in range(self.options.n):
            rgb = np.clip(rng.random((40, 56, 3), dtype=np.float32) * 0.3 + rng.random(3).astype(np.float32) * 0.7, 0, 1)
            if i == 2:
                self.ctx.fail(Item(id=f"bad_{i}.png"), "unreadable: truncated file")
                continue
            yield Item(id=f"img_{i:02d}.png", rgb=rgb, L=rgb.mean(axis=2) * 100)


class FakeTrain(Step):
    def run(self, items):
        for ep in (1, 2, 3):
            self.ctx.event("epoch", {"epoch": ep, "train_loss": 0.03 / ep, "val_loss": 0.031 / ep + 0.001,
                                     "lr": 1e-3, "seconds": 1.0, "images_per_s": 10.0})
        yield from items


class FakeColorize(ItemStep):
    def process(self, item):
        item.output = (np.clip(item.rgb * 0.8 + 0.1, 0, 1) * 255).astype(np.uint8)
        return item


# what the core colorize step records for an image colorized with colour hints:
# [x (column), y (row), radius, colour] in pixels of the original (40 x 56 here)
HINTS = {"img_01.png": [[14.0, 10.0, 3.0, "#ff0000"], [42.0, 30.0, 2.5, "#f0f0a0"]],
         "img_04.png": [[0.0, 39.0, 4.0, "#123456"]]}


class FakeHints(ItemStep):
    def process(self, item):
        if item.id in HINTS:
            item.meta["hint_points"] = HINTS[item.id]
            item.meta["hints"] = "d1e2f3a4"
        return item


class FakeEvaluate(ItemStep):
    def process(self, item):
        k = int(item.id[4:6])
        item.metrics = {"psnr": 20.0 + k, "gray_psnr": 22.0, "ssim": 0.8, "gray_ssim": 0.7,
                        "ab_mse": 0.01 / (k + 1), "gray_ab_mse": 0.01}
        self.ctx.event("metrics", {"item": item.id, **item.metrics})
        return item


def _boom(options, ctx):
    from colorbatch.errors import StepError

    raise StepError("no model found; train one first")


class FakePlugin:
    @hookimpl
    def colorbatch_register_steps(self):
        opts = lambda: NoOptions  # noqa: E731
        return [StepDef("fakeload", opts, FakeLoad), StepDef("faketrain", opts, FakeTrain),
                StepDef("fakecolorize", opts, FakeColorize), StepDef("fakeevaluate", opts, FakeEvaluate),
                StepDef("fakehints", opts, FakeHints),
                StepDef("boom", opts, _boom)]


def _run(tmp_path, n=6, report_with=None, steps=("fakeload", "faketrain", "fakecolorize", "fakeevaluate")):
    pm = make_plugin_manager(no_plugins=True, extra=[report_plugin, FakePlugin()])
    raw = {"schema_version": 1, "name": "fake",
           "steps": [{"uses": s, "with": {"n": n}} for s in steps] + [{"uses": "report", "with": report_with or {}}]}
    plan = build_plan(raw, registry.steps(pm), label="fake.toml", base_dir=tmp_path, run_dir=tmp_path / "run")
    summary = run_plan(plan, pm, console=Console(file=io.StringIO()), show_progress=False)
    return plan, summary


def test_report_step_writes_a_final_report(tmp_path, parse_report):
    plan, summary = _run(tmp_path)
    out = tmp_path / "run" / "report"
    assert plan.steps[-1].options.out == str(out)  # {run_dir}/report resolved
    html = out / "index.html"
    rep = json.loads((out / "report.json").read_text())
    assert rep["final"] is True  # rewritten by colorbatch_run_finished
    assert rep["run"]["ok"] == summary["ok"] == 5 and rep["run"]["failed"] == 1
    p = parse_report(html)
    for src in p.imgs:
        assert (out / src).is_file()
    assert "loss-curve" in p.ids and len(p.svg_polylines) == 2
    assert [f["item"] for f in p.failures] == ["bad_2.png"]
    assert "truncated" in p.failures[0]["text"]
    rows = p.tables["metrics-table"]["rows"]
    assert sorted(r[0]["value"] for r in rows) == [f"img_{i:02d}.png" for i in (0, 1, 3, 4, 5)]
    gallery = p.cards[-5:]
    assert sorted(gallery) == [f"img_{i:02d}.png" for i in (0, 1, 3, 4, 5)]
    # three thumbnails per item (gray, colorized, truth) made from the arrays
    index = json.loads((out / "thumbs" / "index.json").read_text())["items"]
    assert set(index["img_00.png"]) == {"gray", "color", "truth"}
    assert rep["evaluation"]["best"][0]["item"] == "img_05.png"
    assert rep["evaluation"]["worst"][0]["item"] == "img_00.png"


def test_report_step_samples_and_prunes(tmp_path, parse_report):
    _run(tmp_path, n=30, report_with={"max_gallery": 4, "thumbnail_size": 32})
    out = tmp_path / "run" / "report"
    index = json.loads((out / "thumbs" / "index.json").read_text())["items"]
    files = {f.name for f in (out / "thumbs").glob("*.jpg")}
    referenced = {n for roles in index.values() for n in roles.values()}
    assert files == referenced, "evicted thumbnails must be deleted"
    p = parse_report(out / "index.html")
    rep = json.loads((out / "report.json").read_text())
    assert len(index) <= 4 + 12
    best = [b["item"] for b in rep["evaluation"]["best"]]
    assert best[0] == "img_29.png"
    gallery = p.cards[12:]  # after 6 best and 6 worst: the step's sample, in stream order
    assert len(gallery) == 4 and gallery == sorted(gallery) and rep["gallery"] == {"shown": 4, "total": 4, "with_hints": 0}
    for item in best + [w["item"] for w in rep["evaluation"]["worst"]]:
        assert item in index  # best and worst always have pictures
    for src in p.imgs:
        assert (out / src).is_file()


def test_report_without_training_or_metrics(tmp_path, parse_report):
    _run(tmp_path, steps=("fakeload", "fakecolorize"))
    p = parse_report(tmp_path / "run" / "report" / "index.html")
    assert "loss-curve" not in p.ids and "metrics-table" not in p.tables
    assert "gallery" in p.ids and len(p.cards) == 5


def test_cli_rebuilds_the_same_report(tmp_path, parse_report):
    _run(tmp_path, report_with={"title": "Night train", "thumbnail_size": 100})
    out = tmp_path / "run" / "report"
    first = json.loads((out / "report.json").read_text())
    first_cards = parse_report(out / "index.html").cards
    (out / "index.html").unlink()
    res = subprocess.run([sys.executable, "-m", "colorbatch", "report", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "index.html" in res.stdout
    again = json.loads((out / "report.json").read_text())
    assert again["title"] == "Night train"  # the recipe's report options are the defaults
    assert again["run"] == first["run"] and again["evaluation"]["best"] == first["evaluation"]["best"]
    p = parse_report(out / "index.html")
    assert p.cards == first_cards and len(p.cards) == 5 + 5  # gallery + best/worst, from the step's thumbnails
    for src in p.imgs:
        assert (out / src).is_file()


@pytest.mark.parametrize("args, message", [
    (["nowhere"], "no such folder"),
    ([""], "not a run folder"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
    target = str(tmp_path / args[0]) if args[0] else str(tmp_path)
    res = subprocess.run([sys.executable, "-m", "colorbatch", "report", target],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    err = " ".join(res.stderr.split())  # rich wraps long lines on a non-terminal
    assert message in err and err.startswith("error: ") and "Traceback" not in err


def test_a_run_that_fails_to_start_still_gets_a_report(tmp_path, parse_report):
    _, summary = _run(tmp_path, steps=("fakeload", "boom"))
    assert summary["status"] == "failed"
    html = tmp_path / "run" / "report" / "index.html"
    text = html.read_text()
    assert "no model found; train one first" in text
    rep = json.loads((html.parent / "report.json").read_text())
    assert rep["run"]["status"] == "failed" and rep["final"] is True


def _hint_marks_are_right(p):
    """Each hinted card shows its points where they are (percent of width and height), others none."""
    want = {"img_01.png": [("25.000%", "25.000%", "#ff0000", "#ffffff"), ("75.000%", "75.000%", "#f0f0a0", "#000000")],
            "img_04.png": [("0.000%", "97.500%", "#123456", "#ffffff")]}
    hinted = {item for item in p.cards if item in p.hint_marks}
    assert hinted == set(want)
    for item, marks in p.hint_marks.items():
        assert [(c["cx"], c["cy"], c["fill"], c["stroke"]) for c in marks] == want[item]
    assert p.hint_legends == {"img_01.png": "2 colour hints", "img_04.png": "1 colour hint"}
    assert all(c not in p.hint_marks for c in ("img_00.png", "img_03.png", "img_05.png"))


def test_report_draws_colour_hints_on_the_cards(tmp_path, parse_report):
    _run(tmp_path, steps=("fakeload", "fakecolorize", "fakehints"))
    out = tmp_path / "run" / "report"
    p = parse_report(out / "index.html")
    _hint_marks_are_right(p)
    rep = json.loads((out / "report.json").read_text())
    assert rep["gallery"]["with_hints"] == 2
    index = json.loads((out / "thumbs" / "index.json").read_text())
    assert index["hints"]["img_01.png"] == {"size": [56, 40], "points": HINTS["img_01.png"], "digest": "d1e2f3a4"}
    # `colorbatch report` rebuilds the same markers from thumbs/index.json
    from colorbatch_report.build import build_from_folder

    (out / "index.html").unlink()
    _hint_marks_are_right(parse_report(build_from_folder(tmp_path / "run")))


def test_no_hints_no_markers(tmp_path, parse_report):
    _run(tmp_path, steps=("fakeload", "fakecolorize"))
    out = tmp_path / "run" / "report"
    p = parse_report(out / "index.html")
    assert p.cards and p.hint_marks == {} and p.hint_legends == {}
    assert 'class="hints' not in (out / "index.html").read_text()
    assert json.loads((out / "report.json").read_text())["gallery"]["with_hints"] == 0


def test_hint_record_size_and_bad_points():
    from colorbatch_report import hints

    item = Item(id="a.jpg", meta={"width": 200, "height": 100, "hints": "abc",
                                  "hint_points": [[50, 25, 3, "#00FF00"], [1, 2, "x", "#000000"], [1, 2, 3, "red"]]})
    assert hints.from_item(item) == {"size": [200, 100], "points": [[50.0, 25.0, 3.0, "#00ff00"]], "digest": "abc"}
    assert hints.from_item(Item(id="b.jpg", meta={"width": 200, "height": 100})) is None
    assert hints.from_item(Item(id="c.jpg", meta={"hint_points": [[1, 2, 3, "#000000"]]})) is None  # no size
    assert hints.overlay(None) == ""
