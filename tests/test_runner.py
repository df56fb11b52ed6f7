"""The runner: streaming, per-item failures, skipping, summary, lifecycle hooks."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from colorbatch import hookimpl
from colorbatch.errors import ExitCode, ItemError, StepError
from colorbatch.item import Item, flush_marker
from colorbatch.plugins import make_plugin_manager
from colorbatch import registry
from colorbatch.recipe import build_plan
from colorbatch.runner import run_plan
from colorbatch.steps import ItemStep, Step, StepDef


class EmitOpts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = 5
    flush_every: int = 0


class Emit(Step):
    def run(self, items):
        yield from items
        for i in range(self.options.n):
            if self.options.flush_every and i and i % self.options.flush_every == 0:
                yield flush_marker()
            yield Item(id=f"item{i}.png", meta={"index": i})


class FailOpts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    every: int = 2
    step_error_at: int = -1


class FailSome(ItemStep):
    def process(self, item):
        i = item.meta["index"]
        if i == self.options.step_error_at:
            raise StepError("the whole step broke")
        if self.options.every and i % self.options.every == 1:
            raise ItemError(f"{item.id}: odd item refused")
        return item


class Batcher(Step):
    """Holds items until a flush marker or the end, like colorize does."""

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.batches = []

    def run(self, items):
        held = []
        for item in items:
            if item.is_marker:
                self.batches.append(len(held))
                yield from held
                held = []
                yield item
                continue
            held.append(item)
        self.batches.append(len(held))
        yield from held


class DoneOpts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    done: list[int] = []


class Sink(ItemStep):
    def is_done(self, item):
        return item.meta["index"] in self.options.done

    def process(self, item):
        return item


class Observer:
    def __init__(self):
        self.calls = []

    @hookimpl
    def colorbatch_register_steps(self):
        empty = lambda: type("Empty", (BaseModel,), {"model_config": ConfigDict(extra="forbid")})
        return [
            StepDef("emit", lambda: EmitOpts, Emit),
            StepDef("failsome", lambda: FailOpts, FailSome),
            StepDef("batcher", empty, Batcher),
            StepDef("sink", lambda: DoneOpts, Sink),
        ]

    @hookimpl
    def colorbatch_run_started(self, run):
        self.calls.append("started")

    @hookimpl
    def colorbatch_item_failed(self, run, step, item, error):
        self.calls.append(("failed", step.id, item.id, error))

    @hookimpl
    def colorbatch_step_finished(self, run, step, stats):
        self.calls.append(("step", step.id, stats["ok"], stats["failed"]))

    @hookimpl
    def colorbatch_run_finished(self, run, summary):
        self.calls.append(("finished", summary["ok"], summary["failed"], summary["skipped"]))


def _run(tmp_path, steps, **kw):
    obs = Observer()
    pm = make_plugin_manager(no_plugins=True, extra=[obs])
    raw = {"schema_version": 1, "name": "t", "run_dir": str(tmp_path / "run"), "steps": steps}
    plan = build_plan(raw, registry.steps(pm), label="t.toml", base_dir=tmp_path)
    summary = run_plan(plan, pm, show_progress=False, **kw)
    return summary, obs


def test_failing_items_do_not_stop_the_run(tmp_path):
    summary, obs = _run(tmp_path, [{"uses": "emit", "with": {"n": 6}}, {"uses": "failsome"}, {"uses": "sink"}])
    assert summary["ok"] == 3 and summary["failed"] == 3
    assert summary["exit_code"] == ExitCode.ITEMS_FAILED
    assert [f["item"] for f in summary["failures"]] == ["item1.png", "item3.png", "item5.png"]
    assert obs.calls[0] == "started"
    assert ("failed", "failsome", "item1.png", "item1.png: odd item refused") in obs.calls
    assert ("step", "failsome", 3, 3) in obs.calls
    assert obs.calls[-1] == ("finished", 3, 3, 0)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["ok"] == 3 and run["steps"]["emit"]["out"] == 6
    events = [json.loads(l)["event"] for l in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert events[0] == "run_started" and events[-1] == "run_finished"
    assert events.count("item_failed") == 3


def test_all_ok_exit_zero_and_skip_done(tmp_path):
    summary, _ = _run(
        tmp_path,
        [{"uses": "emit", "with": {"n": 4}}, {"uses": "failsome", "with": {"every": 0}}, {"uses": "sink", "with": {"done": [0, 2]}}],
    )
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (2, 0, 2)
    assert summary["exit_code"] == ExitCode.OK
    # skipped right after the first step: the middle step never saw them
    assert summary["steps"]["failsome"]["in"] == 2


def test_step_error_stops_with_message(tmp_path):
    summary, _ = _run(tmp_path, [{"uses": "emit", "with": {"n": 4}}, {"uses": "failsome", "with": {"every": 0, "step_error_at": 2}}])
    assert summary["status"] == "failed"
    assert summary["exit_code"] == ExitCode.ITEMS_FAILED
    assert "steps[2] (failsome): the whole step broke" in summary["error"]


def test_flush_markers_reach_batching_steps_and_are_not_counted(tmp_path):
    summary, _ = _run(tmp_path, [{"uses": "emit", "with": {"n": 7, "flush_every": 3}}, {"uses": "batcher"}, {"uses": "sink"}])
    assert summary["ok"] == 7 and summary["failed"] == 0
    assert summary["steps"]["emit"]["out"] == 7


def test_internal_error_gives_exit_3(tmp_path):
    class Boom:
        @hookimpl
        def colorbatch_register_steps(self):
            class B(ItemStep):
                def run(self, items):
                    raise ZeroDivisionError("bug")
                    yield

            return [StepDef("boom", lambda: EmitOpts, B)]

    pm = make_plugin_manager(no_plugins=True, extra=[Boom()])
    raw = {"schema_version": 1, "name": "t", "steps": [{"uses": "boom"}]}
    plan = build_plan(raw, registry.steps(pm), label="t", base_dir=tmp_path, run_dir=tmp_path / "r")
    summary = run_plan(plan, pm, show_progress=False)
    assert summary["exit_code"] == ExitCode.INTERNAL
    assert isinstance(summary["_exception"], ZeroDivisionError)


def test_step_seconds_exclude_upstream_time(tmp_path):
    import time as _time

    class Slow:
        @hookimpl
        def colorbatch_register_steps(self):
            class S(Step):
                def run(self, items):
                    for i in range(3):
                        _time.sleep(0.1)
                        yield Item(id=f"{i}", meta={"index": i})

            return [StepDef("slow", lambda: EmitOpts, S)]

    pm = make_plugin_manager(no_plugins=True, extra=[Slow(), Observer()])
    raw = {"schema_version": 1, "name": "t", "steps": [{"uses": "slow"}, {"uses": "sink"}]}
    plan = build_plan(raw, registry.steps(pm), label="t", base_dir=tmp_path, run_dir=tmp_path / "r")
    summary = run_plan(plan, pm, show_progress=False)
    assert summary["steps"]["slow"]["seconds"] >= 0.29
    assert summary["steps"]["sink"]["seconds"] < 0.1


def test_run_state_keeps_plugin_values_by_type_and_facts_for_the_summary():
    from dataclasses import dataclass

    from colorbatch.api import RunState

    @dataclass
    class Settings:
        crf: int = 18

    class Finer(Settings):
        pass

    state = RunState()
    assert state.find(Settings) is None
    kept = state.put(Settings(20))
    assert state.find(Settings) is kept and state.find(Settings).crf == 20
    state.put(Settings(22))  # one per class: the later one wins
    assert state.find(Settings).crf == 22
    fresh = RunState()
    fresh.put(Finer(5))
    assert fresh.find(Settings).crf == 5  # a subclass is found by its base
    state.facts["watch_done"] = 27
    state.model_id = "m@1"
    assert state.plain() == {"model_id": "m@1", "watch_done": "27"}
    assert "Settings" not in repr(state.plain())
