"""The ``watch`` source in a recipe (``layout = "watch"``), run by ``colorbatch run`` in a
subprocess. The grayscale step stands in for colorize, so no model is needed: this checks
the source, the hooks, SIGTERM and the restart bookkeeping on their own."""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from watch_testlib import read_jsonl


RECIPE = """schema_version = 1
name = "watch-gray"
run_dir = "run"

[[steps]]
uses = "load"
with = {{ source = "in", layout = "watch" }}

[[steps]]
uses = "grayscale"

[[steps]]
uses = "save"
with = {{ out = "{out}" }}
"""


_lines = read_jsonl


def _run(tmp_path: Path, env_extra: dict, log: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", COLORBATCH_WATCH_SETTLE="0.3",
               COLORBATCH_WATCH_RESCAN="1", **env_extra)
    return subprocess.Popen([sys.executable, "-m", "colorbatch", "run", "recipe.toml"], cwd=tmp_path, env=env,
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _wait(cond, proc, log: Path, timeout=60.0, what=""):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        if proc.poll() is not None:
            raise AssertionError(f"exited ({proc.returncode}) waiting for {what}:\n{log.read_text()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")


def test_watch_source_in_a_recipe_with_sigterm_and_restart(tmp_path, make_png):
    root, out = tmp_path / "in", tmp_path / "in" / "gray"
    root.mkdir()
    (tmp_path / "recipe.toml").write_text(RECIPE.format(out="in/gray"))
    wlog = out / ".colorbatch-watch.jsonl"
    log = tmp_path / "stderr.log"
    (root / "first.png").write_bytes(make_png(1))

    proc = _run(tmp_path, {}, log)
    _wait(lambda: (out / "first.png").is_file(), proc, log, 60, "the file already there")
    for i in range(25):
        (root / f"b{i:02d}.png").write_bytes(make_png(10 + i))
    (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    (root / "x.png.tmp").write_bytes(make_png(99))
    os.replace(root / "x.png.tmp", root / "x.png")
    _wait(lambda: len([r for r in _lines(wlog) if r["event"] in ("done", "failed")]) >= 28, proc, log, 60, "the burst")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 1, log.read_text()  # a clean stop; the runner's code says an item failed
    summary = json.loads((tmp_path / "run" / "run.json").read_text())
    assert summary["status"] == "items_failed" and summary["ok"] == 27 and summary["failed"] == 1
    assert summary["state"]["watch_done"] == "27"  # run.json keeps state values as text
    names = [json.loads(line)["event"] for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert "watch_started" in names and "watch_stopped" in names

    # restart with --once semantics: nothing is redone, the bad file is not retried
    (root / "late.png").write_bytes(make_png(200))
    proc = _run(tmp_path, {"COLORBATCH_WATCH_ONCE": "1"}, log)
    assert proc.wait(60) == 0, log.read_text()
    events = _lines(wlog)
    done = collections.Counter(r["item"] for r in events if r["event"] == "done")
    assert set(done.values()) == {1} and len(done) == 28 and "late.png" in done
    assert [r["item"] for r in events if r["event"] == "failed"] == ["bad.png"]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(done)
    assert not any(p.name.startswith("gray") for p in out.iterdir())  # its own outputs are not watched
