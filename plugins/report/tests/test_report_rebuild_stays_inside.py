"""`colorbatch report RUN_DIR` writes inside RUN_DIR (or --out) only, whatever recipe.json says."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from test_report_step import _run


def _digest(folder: Path) -> dict:
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = Path(root) / f
            out[str(p.relative_to(folder))] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


def _report(*args):
    return subprocess.run([sys.executable, "-m", "colorbatch", "report", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_a_copied_run_folder_gets_its_own_report(tmp_path):
    _run(tmp_path / "a", report_with={"title": "Original"})
    original = tmp_path / "a" / "run"
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    before = _digest(original)
    (copy / "report" / "index.html").unlink()
    r = _report(copy)
    assert r.returncode == 0, r.stderr
    assert _digest(original) == before  # the original run is untouched
    assert (copy / "report" / "index.html").is_file()
    assert json.loads((copy / "report" / "report.json").read_text())["title"] == "Original"


def test_an_edited_recipe_cannot_send_the_report_elsewhere(tmp_path):
    _run(tmp_path / "a")
    run = tmp_path / "a" / "run"
    victim = tmp_path / "victim"
    (victim / "thumbs").mkdir(parents=True)
    (victim / "index.html").write_text("my own page")
    (victim / "thumbs" / "index.json").write_text(json.dumps({"size": 192, "format": "jpeg", "items": {}}))
    (victim / "thumbs" / "keep.jpg").write_bytes(b"mine")
    recipe = json.loads((run / "recipe.json").read_text())
    for step in recipe["steps"]:
        if step["uses"] == "report":
            step["with"]["out"] = str(victim)
    (run / "recipe.json").write_text(json.dumps(recipe))
    before = _digest(victim)
    r = _report(run)
    assert r.returncode == 0, r.stderr
    assert _digest(victim) == before
    assert (run / "report" / "index.html").is_file()


def test_out_still_chooses_the_folder(tmp_path):
    _run(tmp_path / "a")
    r = _report(tmp_path / "a" / "run", "--out", tmp_path / "elsewhere")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "elsewhere" / "index.html").is_file()
