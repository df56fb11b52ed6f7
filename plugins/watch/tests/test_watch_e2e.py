"""End to end: `colorbatch watch` in a subprocess with a tiny untrained model.

Files arrive slowly in pieces, in a burst, twice, via rename, with corrupt ones
among them; the watcher is stopped (SIGTERM, also mid-burst) and restarted.
Every good input must end with exactly one correct output, every bad one with
exactly one reported failure, and nothing may be lost or processed twice.
"""
from __future__ import annotations

import collections
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from watch_testlib import read_jsonl

pytestmark = pytest.mark.slow


def _colorize_ready() -> bool:
    from colorbatch.plugins import make_plugin_manager
    from colorbatch import registry

    sdef = registry.steps(make_plugin_manager(no_plugins=True)).get("colorize")
    return sdef is not None and "model" in getattr(sdef.options(), "model_fields", {})


needs_colorize = pytest.mark.skipif(not _colorize_ready(), reason="the core colorize step is not built yet")


records = read_jsonl


def events(out: Path, name: str) -> list[dict]:
    return [r for r in records(out / ".colorbatch-watch.jsonl") if r.get("event") == name]


def check_output(src: Path, dst: Path) -> None:
    """The output is a readable colour image of the input's size that keeps its lightness."""
    from PIL import Image

    with Image.open(src) as a, Image.open(dst) as b:
        assert b.size == a.size, dst
        assert b.mode == "RGB", dst
        ga = np.asarray(a.convert("L"), dtype=np.float32)
        gb = np.asarray(b.convert("L"), dtype=np.float32)
    assert np.abs(ga - gb).mean() < 20, f"{dst}: lightness differs from its input"


def write_slowly(path: Path, data: bytes, pieces: int = 3, pause: float = 0.2) -> None:
    step = len(data) // pieces + 1
    with open(path, "wb") as fh:
        for i in range(0, len(data), step):
            fh.write(data[i : i + step])
            fh.flush()
            time.sleep(pause)


@needs_colorize
def test_watch_exactly_once_across_events_failures_and_restarts(tmp_path, tiny_model, make_png, start_watcher):
    root = tmp_path / "in"
    out = root / "colored"  # inside the watched folder: must be ignored
    root.mkdir()
    good: dict[str, bytes] = {}
    bad: set[str] = set()

    def put(rel: str, data: bytes, ok: bool = True) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        (good.__setitem__(rel, data) if ok else bad.add(rel))

    for i in range(3):
        put(f"pre{i}.png", make_png(i))
    put("pre_bad.png", make_png(9)[:40], ok=False)  # truncated

    args = [root, "--out", out, "--model", tiny_model, "--settle", "1", "--rescan", "2",
            "--batch-size", "4", "--size", "32", "--device", "cpu"]
    done = lambda: {Path(r["id"]).as_posix() for r in records(out / ".colorbatch-manifest.jsonl")}  # noqa: E731

    # ---- session 1: files that were there, then arrivals of every kind --------
    w = start_watcher(args)
    w.wait_for(lambda: {"pre0.png", "pre1.png", "pre2.png"} <= done(), 120, "the files already there")

    slow = make_png(100)
    (root / "sub").mkdir()
    write_slowly(root / "sub" / "slow.png", slow)  # pauses (0.2 s) shorter than --settle
    good["sub/slow.png"] = slow
    (root / "sub" / "moved.png.part").write_bytes(make_png(101))  # a partial name: ignored
    os.replace(root / "sub" / "moved.png.part", root / "sub" / "moved.png")
    good["sub/moved.png"] = make_png(101)
    (root / "twice.png").write_bytes(make_png(102))
    put("twice.png", make_png(103))  # written again before it settled: one output, of the second
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(make_png(104))
    (root / "draft.png~").write_bytes(make_png(105))
    for i in range(30):  # a burst, with corrupt files among it
        if i in (5, 15):
            put(f"burst/b{i:02d}.png", os.urandom(300) if i == 5 else b"\x89PNG\r\n\x1a\nnot really", ok=False)
        else:
            put(f"burst/b{i:02d}.png", make_png(200 + i))
    w.wait_for(lambda: set(good) <= done() and len(events(out, "failed")) >= len(bad), 120, "the burst")

    time.sleep(0.2)
    put("pre0.png", make_png(300))  # replaced with new content: processed again
    w.wait_for(lambda: len([r for r in events(out, "done") if r["item"] == "pre0.png"]) == 2, 60, "the replaced file")
    time.sleep(2.5)  # a rescan goes by: nothing new is taken
    assert w.stop(signal.SIGTERM) == 0, w.text()
    log1 = w.text()
    assert "watching" in log1

    # ---- session 2 (--once): what arrived while it was stopped -----------------
    for i in range(6):
        put(f"offline/o{i}.png", make_png(400 + i))
    put("offline/o_bad.jpg", b"\xff\xd8\xff\xe0 truncated jpeg", ok=False)
    w2 = start_watcher([*args, "--once"], name="once")
    code = w2.wait(120)
    assert code == 1, w2.text()  # one file failed in this session
    assert set(good) <= done()

    # ---- session 3: SIGTERM in the middle of a burst (the current batch is finished) ----
    small = [a if a != "4" else "2" for a in args]  # --batch-size 2
    w3 = start_watcher(small)
    w3.wait_for(lambda: len(events(out, "started")) == 3, 120, "the third start")
    for i in range(20):
        put(f"late/l{i:02d}.png", make_png(500 + i))
    w3.wait_for(lambda: any(d.startswith("late/") for d in done()), 60, "the first late output")
    assert w3.stop(signal.SIGTERM) == 0, w3.text()

    # ---- session 4: two signals in a row abandon the batch at once -------------
    for i in range(20):
        put(f"later/m{i:02d}.png", make_png(600 + i))
    w4 = start_watcher(small)
    w4.wait_for(lambda: len(events(out, "started")) == 4, 120, "the fourth start")
    w4.proc.send_signal(signal.SIGTERM)
    assert w4.stop(signal.SIGTERM) in (0, 130), w4.text()  # 130 unless the batch was already done
    leftovers = [p for p in out.rglob("*") if p.is_file() and (".tmp" in p.name or p.name.endswith(".part"))]
    assert leftovers == []  # no partial outputs

    # ---- session 5 (--once): the rest, nothing twice ---------------------------
    w5 = start_watcher([*args, "--once"], name="once")
    assert w5.wait(120) == 0, w5.text()

    # every good input: exactly one output, correct; the replaced one twice in the log, latest content
    manifest = records(out / ".colorbatch-manifest.jsonl")
    per_id = collections.Counter(r["id"] for r in manifest)
    expected = {rel: (2 if rel == "pre0.png" else 1) for rel in good}
    assert dict(per_id) == expected
    for rel in good:
        check_output(root / rel, out / rel)
    outputs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert outputs == sorted(good)
    # every bad input: exactly one reported failure, over all the sessions
    failed = collections.Counter(r["item"] for r in events(out, "failed"))
    assert dict(failed) == {rel: 1 for rel in bad}
    # the JSONL log tells the story of the sessions (an abandoned one may miss its "stopped")
    assert len(events(out, "started")) == 5 and len(events(out, "stopped")) >= 4
    processed = collections.Counter(r["item"] for r in events(out, "done"))
    assert dict(processed) == expected


@needs_colorize
def test_unwritable_output_is_retried_with_backoff(tmp_path, tiny_model, make_png, start_watcher):
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    out.write_text("a file in the way: the output folder cannot be created")
    (root / "a.png").write_bytes(make_png(1))
    w = start_watcher([root, "--out", out, "--model", tiny_model, "--settle", "0.3", "--size", "32",
                       "--device", "cpu"])
    w.wait_for(lambda: "not writable" in w.text(), 60, "the report")
    out.unlink()  # the folder becomes writable
    w.wait_for(lambda: (out / "a.png").is_file(), 60, "the retried output")
    assert w.stop(signal.SIGINT) == 130
    assert [r["item"] for r in events(out, "done")] == ["a.png"]


def test_watch_refuses_bad_folders(tmp_path, start_watcher):
    missing = start_watcher([tmp_path / "nope", "--out", tmp_path / "o"])
    assert missing.wait(60) == 2
    assert "not a folder" in missing.text()
    same = start_watcher([tmp_path, "--out", tmp_path])
    assert same.wait(60) == 2
    assert "cannot be the watched folder" in same.text()
