"""The save step writes images in a background thread: in order, one bad item failing
alone, and a stopped run recording every file it wrote (docs/speed.md)."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
from pydantic import BaseModel, ConfigDict

from colorbatch import hookimpl, registry
from colorbatch.item import Item, flush_marker
from colorbatch.manifest import MANIFEST_NAME
from colorbatch.plugins import make_plugin_manager
from colorbatch.recipe import build_plan
from colorbatch.runner import run_plan
from colorbatch.steps import Step, StepDef


class Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = 6
    stop_at: int = -1  # Ctrl-C arrives while this item would be made
    flush_at: int = -1


class Make(Step):
    def run(self, items):
        yield from items
        for i in range(self.options.n):
            if i == self.options.stop_at:
                raise KeyboardInterrupt
            if i == self.options.flush_at:
                yield flush_marker()
            out = np.full((16, 24, 3), 10 * i, np.uint8)
            yield Item(id=f"im{i}.png", output=out, meta={"index": i})


class Plugin:
    @hookimpl
    def colorbatch_register_steps(self):
        return [StepDef("make", lambda: Opts, Make)]


def _run(tmp_path, **opts):
    pm = make_plugin_manager(no_plugins=True, extra=[Plugin()])
    raw = {"schema_version": 1, "name": "t", "run_dir": str(tmp_path / "run"),
           "steps": [{"uses": "make", "with": opts}, {"uses": "save", "with": {"out": str(tmp_path / "out")}}]}
    plan = build_plan(raw, registry.steps(pm), label="t.toml", base_dir=tmp_path)
    return run_plan(plan, pm, show_progress=False)


def _events(tmp_path, name):
    lines = (tmp_path / "run" / "events.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == name]


def _manifest_ids(tmp_path):
    path = tmp_path / "out" / MANIFEST_NAME
    return [json.loads(x)["id"] for x in path.read_text().splitlines()] if path.exists() else []


def _slow_writes(monkeypatch, seconds=0.0, fail=(), threads=None):
    import colorbatch.images as images

    real = images.write_image

    def write(path, *a, **kw):
        if threads is not None:
            threads.append(threading.current_thread().name)
        # later items finish first unless the writer keeps the order
        time.sleep(seconds * (1.0 if path.name.startswith("im0") else 0.2))
        if path.name in fail:
            raise OSError(f"disk full writing {path.name}")
        return real(path, *a, **kw)

    monkeypatch.setattr(images, "write_image", write)


def test_images_are_written_in_a_background_thread_and_recorded_in_order(tmp_path, monkeypatch):
    threads: list = []
    _slow_writes(monkeypatch, 0.05, threads=threads)
    summary = _run(tmp_path, n=6, flush_at=3)
    assert summary["ok"] == 6 and summary["failed"] == 0
    assert threads and all(t.startswith("colorbatch-save") for t in threads)
    order = [f"im{i}.png" for i in range(6)]
    assert [e["item"] for e in _events(tmp_path, "saved")] == order
    assert _manifest_ids(tmp_path) == order
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([MANIFEST_NAME, *order])


def test_a_failed_write_fails_that_item_only(tmp_path, monkeypatch):
    _slow_writes(monkeypatch, 0.02, fail=("im2.png",))
    summary = _run(tmp_path, n=5)
    assert summary["ok"] == 4 and summary["failed"] == 1
    assert summary["failures"][0]["item"] == "im2.png" and "disk full" in summary["failures"][0]["error"]
    assert _manifest_ids(tmp_path) == ["im0.png", "im1.png", "im3.png", "im4.png"]
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_a_stopped_run_records_every_file_it_wrote(tmp_path, monkeypatch):
    _slow_writes(monkeypatch, 0.3)
    summary = _run(tmp_path, n=6, stop_at=3)
    assert summary["status"] == "interrupted"
    written = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != MANIFEST_NAME)
    # the three writes in flight at the stop are finished and recorded, so a rerun skips them
    assert written == ["im0.png", "im1.png", "im2.png"]
    assert sorted(_manifest_ids(tmp_path)) == written
    again = _run(tmp_path, n=3)
    assert (again["ok"], again["skipped"]) == (0, 3)
