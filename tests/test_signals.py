"""SIGTERM (and Ctrl-C) to `colorize` or `run` outside training: a clean shutdown, exit 130.

Each run is stopped at a known point (its first saved output, through a blocking
observer plugin), then signalled; the test checks what is left: the exit code, the
summary (text and --json), run.json, no temporary file and no live worker process.
"""
from __future__ import annotations

import json
import os
import signal
import sys

import pytest

from _promise_lib import ENV, alive, hidden_files, run_until_saved_then_signal, tiny_model
from colorbatch.testing import recipe_text, save_tiny_image

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for child processes")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_model(tmp_path_factory.mktemp("model"))


def _inputs(folder, n=16):
    # more than the save step's writes in flight (colorbatch.steps.save.WRITE_AHEAD): the
    # first "saved" event, where the driver signals, then comes while workers still decode
    for i in range(n):
        save_tiny_image(folder / f"p{i}.png", mode="L", seed=i)
    return folder


def _check_clean_stop(rc, out, err, children, run_dir, outputs, json_mode):
    assert rc == 130, err[-3000:]
    assert children, "the run was meant to have a decoding worker at the signal"
    assert [pid for pid in children if alive(pid)] == []
    assert hidden_files(outputs) == []
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "interrupted" and run["exit_code"] == 130
    if json_mode:
        assert json.loads(out)["status"] == "interrupted"
    else:
        assert " ok, " in err and "interrupted" in err


@pytest.mark.parametrize("json_mode", [True, False])
def test_sigterm_to_colorize_shuts_down_cleanly(tmp_path, model_path, json_mode):
    src = _inputs(tmp_path / "in")
    out, run_dir = tmp_path / "out", tmp_path / "run"
    args = ["colorize", src, "--out", out, "-m", model_path, "-j", "1", "-b", "1", "--size", "64",
            "--run-dir", run_dir] + (["--json"] if json_mode else [])
    rc, so, se, children = run_until_saved_then_signal(args, tmp_path)
    _check_clean_stop(rc, so, se, children, run_dir, out, json_mode)


def test_sigterm_to_run_shuts_down_cleanly(tmp_path, model_path):
    src = _inputs(tmp_path / "in")
    out, run_dir = tmp_path / "out", tmp_path / "run"
    recipe = tmp_path / "r.toml"
    recipe.write_text(recipe_text([
        ("load", {"source": str(src)}),
        ("colorize", {"model": str(model_path), "workers": 1, "batch_size": 1, "size": 64}),
        ("save", {"out": str(out)}),
    ], name="sig", run_dir=str(run_dir)))
    rc, so, se, children = run_until_saved_then_signal(["run", recipe, "--json"], tmp_path)
    _check_clean_stop(rc, so, se, children, run_dir, out, True)


def test_sigint_to_colorize_leaves_no_worker(tmp_path, model_path):
    src = _inputs(tmp_path / "in")
    out, run_dir = tmp_path / "out", tmp_path / "run"
    args = ["colorize", src, "--out", out, "-m", model_path, "-j", "1", "-b", "1", "--size", "64",
            "--run-dir", run_dir, "--json"]
    rc, so, se, children = run_until_saved_then_signal(args, tmp_path, sig=signal.SIGINT)
    _check_clean_stop(rc, so, se, children, run_dir, out, True)


def test_more_workers_than_cores_are_not_started(tmp_path, model_path):
    src = _inputs(tmp_path / "in", n=12)
    out = tmp_path / "out"
    args = ["colorize", src, "--out", out, "-m", model_path, "-j", "999", "-b", "1", "--size", "64"]
    rc, so, se, children = run_until_saved_then_signal(args, tmp_path, sig=signal.SIGINT)
    assert 1 <= len(children) <= (os.cpu_count() or 1), children
    assert "-j 999" in se or "workers 999" in se, se[-2000:]
