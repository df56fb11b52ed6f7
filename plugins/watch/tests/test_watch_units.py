"""Unit tests of the watch plugin's parts, with a fake processing function (no model)."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from colorbatch.api import RunState
from colorbatch_watch.files import FileKey, PathFilter, SettleTracker, is_candidate_name
from colorbatch_watch.session import LOG_NAME, WatchSession, output_writable, read_failures
from colorbatch_watch.source import WatchConfig, enumerate_watch


# --------------------------------------------------------------------------- #
# names and folders
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "name, ok",
    [
        ("a.png", True),
        ("B.JPG", True),
        ("scan.tiff", True),
        ("a.png.part", False),
        ("a.png.tmp", False),
        ("a.jpg.crdownload", False),
        ("a.png~", False),
        (".a.png", False),
        ("~$a.png", False),
        ("notes.txt", False),
        ("film.mp4", False),
    ],
)
def test_candidate_names(name, ok):
    assert is_candidate_name(name) is ok


def test_filter_skips_hidden_and_output_folders(tmp_path):
    root = tmp_path / "in"
    out = root / "colored"
    for rel in ["a.png", "sub/b.jpg", ".hidden/c.png", "colored/d.png", "sub/e.png.part", "sub/f.txt"]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    f = PathFilter(root, exclude=[out])
    found = [f.relative(p) for p in f.scan()]
    assert found == ["a.png", "sub/b.jpg"]
    assert not f.accepts(out / "d.png")
    assert f.accepts(root / "sub" / "new.png")
    assert f.relative(tmp_path / "elsewhere.png") is None


# --------------------------------------------------------------------------- #
# settling
# --------------------------------------------------------------------------- #


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_tracker_waits_for_stable_size_and_mtime(tmp_path):
    clock = Clock()
    tr = SettleTracker(2.0, mtime_shortcut=False, clock=clock)
    p = tmp_path / "a.png"
    p.write_bytes(b"12345")
    tr.touch(p)
    assert tr.ready() == []
    clock.t += 1.5
    with open(p, "ab") as fh:  # still being written: the clock starts again
        fh.write(b"678")
    assert tr.ready() == []
    clock.t += 1.5
    assert tr.ready() == []  # only 1.5 s since the last change
    clock.t += 0.6
    ready = tr.ready()
    assert [r[0] for r in ready] == [p] and ready[0][1].size == 8
    assert len(tr) == 0


def test_tracker_moved_files_are_ready_at_once_and_empty_files_never(tmp_path):
    clock = Clock()
    tr = SettleTracker(5.0, mtime_shortcut=False, clock=clock)
    moved, empty, gone = tmp_path / "m.png", tmp_path / "e.png", tmp_path / "g.png"
    moved.write_bytes(b"data")
    empty.write_bytes(b"")
    gone.write_bytes(b"data")
    tr.touch(moved, moved=True)
    tr.touch(empty)
    tr.touch(gone)
    gone.unlink()
    assert [r[0] for r in tr.ready()] == [moved]
    clock.t += 100
    assert tr.ready() == []  # the empty one waits for content; the deleted one is forgotten
    assert tr.paths() == [empty] and tr.waiting_for_content() == 1
    assert tr.next_due() is None  # an empty file does not keep the loop spinning


def test_tracker_mtime_shortcut_takes_old_files(tmp_path):
    tr = SettleTracker(2.0, mtime_shortcut=True)
    p = tmp_path / "old.png"
    p.write_bytes(b"data")
    old = time.time() - 60
    os.utime(p, (old, old))
    tr.touch(p)
    assert [r[0] for r in tr.ready()] == [p]


# --------------------------------------------------------------------------- #
# session bookkeeping
# --------------------------------------------------------------------------- #


def test_failures_survive_a_restart_until_the_file_changes(tmp_path):
    out = tmp_path / "out"
    s = WatchSession(tmp_path, out)
    key = FileKey(10, 123)
    s.taken(tmp_path / "bad.png", "bad.png", key, reason="found")
    s.on_failed("colorize", str(tmp_path / "bad.png"), "not an image")
    s.close()
    assert read_failures(out / LOG_NAME) == {"bad.png": key}
    s2 = WatchSession(tmp_path, out)
    assert s2.should_take("bad.png", key) is not None
    assert s2.should_take("bad.png", FileKey(11, 124)) is None  # replaced: taken again
    assert WatchSession(tmp_path, out, retry_failed=True).should_take("bad.png", key) is None


def test_save_failures_are_retried_while_output_unwritable(tmp_path):
    out = tmp_path / "out"
    out.write_text("a file where the output folder should be")  # makes it unwritable, even for root
    assert not output_writable(out)
    s = WatchSession(tmp_path, out)
    s.taken(tmp_path / "a.png", "a.png", FileKey(1, 1), reason="found")
    s.on_failed("save", str(tmp_path / "a.png"), "cannot write")
    assert s.counts["failed"] == 0 and s.counts["retried"] == 1
    assert [p for p, _ in s.retry_queue] == [tmp_path / "a.png"]
    assert s.output_blocked_until > 0
    assert s.should_take("a.png", FileKey(1, 1)) is None  # may be taken again


def test_torn_log_line_is_ignored(tmp_path):
    log = tmp_path / LOG_NAME
    log.write_text(json.dumps({"event": "failed", "item": "x.png", "size": 1, "mtime_ns": 2}) + "\n{\"event\": \"fa")
    assert read_failures(log) == {"x.png": FileKey(1, 2)}


# --------------------------------------------------------------------------- #
# the source, driven by a fake pipeline
# --------------------------------------------------------------------------- #


class FakeRun:
    """Stands in for the runner: drives the source, 'colorizes' by copying, reports outcomes."""

    def __init__(self, root: Path, out: Path, **config):
        self.root, self.out = root, out
        self.events = []
        self.outputs: dict[str, int] = {}
        self.failed: list[str] = []
        self.markers = 0
        self.state = RunState()
        self.state.put(WatchConfig(**{"settle": 0.5, "rescan": 0.5, **config}))
        self.plan = SimpleNamespace(steps=[SimpleNamespace(options=SimpleNamespace(out=str(out)))])
        self.thread = None
        self.error = None

    # ctx API used by the source
    def event(self, name, data):
        self.events.append((name, data))

    def warn(self, message):
        self.events.append(("warn", {"message": message}))

    def log(self, message):
        pass

    @property
    def session(self) -> WatchSession:
        return self.state.find(WatchSession)

    def _loop(self):
        try:
            for item in enumerate_watch(str(self.root), None, self):
                if item.is_marker:
                    self.markers += 1
                    continue
                data = item.path.read_bytes()
                if data.startswith(b"BAD"):
                    self.failed.append(item.id)
                    self.session.on_failed("colorize", item.label, "not an image")
                    continue
                target = self.out / item.id
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                self.outputs[item.id] = self.outputs.get(item.id, 0) + 1
                self.session.on_saved({"item": item.id, "input": str(item.path), "output": str(target)})
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def start(self):
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        return self

    def stop(self, timeout=10):
        if self.thread is not None:
            while self.state.find(WatchSession) is None:
                time.sleep(0.01)
            self.session.request_stop()
            self.thread.join(timeout)
            assert not self.thread.is_alive()
        assert self.error is None, self.error


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_source_takes_each_complete_file_once(tmp_path):
    root, out = tmp_path / "in", tmp_path / "in" / "out"
    root.mkdir()
    (root / "old.png").write_bytes(b"old")
    (root / "bad.png").write_bytes(b"BAD!")
    run = FakeRun(root, out).start()
    assert wait_for(lambda: "old.png" in run.outputs and "bad.png" in run.failed)

    # written slowly in pieces: taken only once complete
    slow = root / "sub" / "slow.png"
    slow.parent.mkdir()
    with open(slow, "wb") as fh:
        for piece in (b"aa", b"bb", b"cc"):
            fh.write(piece)
            fh.flush()
            time.sleep(0.1)
    # published by rename, with a partial name first (ignored)
    part = root / "moved.png.part"
    part.write_bytes(b"moved")
    os.replace(part, root / "moved.png")
    # touched again without change: the same version, not taken twice
    os.utime(root / "old.png", ns=(os.stat(root / "old.png").st_atime_ns, os.stat(root / "old.png").st_mtime_ns))
    (root / ".hidden.png").write_bytes(b"hidden")
    (root / "notes.txt").write_text("not an image")
    assert wait_for(lambda: {"sub/slow.png", "moved.png"} <= set(run.outputs))
    assert (out / "sub" / "slow.png").read_bytes() == b"aabbcc"

    # replaced with new content: processed again
    time.sleep(0.05)
    (root / "old.png").write_bytes(b"newer")
    assert wait_for(lambda: run.outputs.get("old.png") == 2)
    time.sleep(1.2)  # two rescans go by: nothing more is taken
    run.stop()
    assert run.outputs == {"old.png": 2, "sub/slow.png": 1, "moved.png": 1}
    assert run.failed == ["bad.png"]
    assert (out / "old.png").read_bytes() == b"newer"
    assert run.markers >= 1
    stats = run.session.stats()
    assert stats["done"] == 4 and stats["failed"] == 1 and stats["queued"] == 0
    names = [n for n, _ in run.events]
    assert names[0] == "watch_started" and names[-1] == "watch_stopped"

    # a restart: the bad file is not retried (reported once), new files are taken
    (root / "later.png").write_bytes(b"later")
    run2 = FakeRun(root, out).start()
    assert wait_for(lambda: "later.png" in run2.outputs)
    time.sleep(0.8)
    run2.stop()
    assert run2.failed == []
    log = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
    assert [r["item"] for r in log if r["event"] == "failed"] == ["bad.png"]
    assert {r["event"] for r in log} == {"started", "done", "failed", "stopped"}
    first = log[: [r["event"] for r in log].index("stopped")]  # (the fake has no manifest to resume from)
    assert sorted(r["item"] for r in first if r["event"] == "done") == ["moved.png", "old.png", "old.png", "sub/slow.png"]


def test_once_mode_processes_what_is_there_and_ends(tmp_path):
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    for i in range(5):
        (root / f"{i}.png").write_bytes(b"img%d" % i)
    (root / "empty.png").write_bytes(b"")
    run = FakeRun(root, out, once=True).start()
    run.thread.join(10)
    assert not run.thread.is_alive() and run.error is None
    assert sorted(run.outputs) == [f"{i}.png" for i in range(5)]
    assert all(n == 1 for n in run.outputs.values())


def test_burst_is_streamed_not_listed(tmp_path):
    """Items flow out while the burst is being written; each is taken once."""
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    run = FakeRun(root, out, settle=0.2).start()
    for i in range(200):
        (root / f"b{i:03d}.png").write_bytes(b"burst")
    assert wait_for(lambda: len(run.outputs) == 200, timeout=20)
    run.stop()
    assert set(run.outputs.values()) == {1}


def test_polling_mode_and_a_folder_moved_in(tmp_path):
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    run = FakeRun(root, out, poll=True, poll_interval=0.2, rescan=60).start()
    assert wait_for(lambda: run.state.find(WatchSession) is not None)
    staging = tmp_path / "staging" / "album"
    staging.mkdir(parents=True)
    for i in range(3):
        (staging / f"p{i}.jpg").write_bytes(b"photo%d" % i)
    os.replace(staging, root / "album")  # a whole folder moved into place
    (root / "single.png").write_bytes(b"single")
    assert wait_for(lambda: len(run.outputs) == 4)
    run.stop()
    assert sorted(run.outputs) == ["album/p0.jpg", "album/p1.jpg", "album/p2.jpg", "single.png"]
    assert set(run.outputs.values()) == {1}


def test_inotify_folder_moved_in_is_found_without_a_rescan(tmp_path):
    root, out = tmp_path / "in", tmp_path / "out"
    root.mkdir()
    run = FakeRun(root, out, rescan=60).start()
    time.sleep(0.5)
    staging = tmp_path / "staging" / "album"
    (staging / "deep").mkdir(parents=True)
    (staging / "deep" / "a.png").write_bytes(b"a")
    (staging / "b.png").write_bytes(b"b")
    os.replace(staging, root / "album")
    assert wait_for(lambda: len(run.outputs) == 2)
    run.stop()
    assert sorted(run.outputs) == ["album/b.png", "album/deep/a.png"]


def test_watch_source_options_are_validated_before_work(tmp_path):
    """A misspelt watch setting in a recipe is named, with a suggestion, before any work."""
    from colorbatch import registry
    from colorbatch.plugins import make_plugin_manager
    from colorbatch.recipe import build_plan
    from colorbatch.runner import run_plan

    (tmp_path / "in").mkdir()
    pm = make_plugin_manager()
    raw = {
        "schema_version": 1,
        "name": "w",
        "steps": [
            {"uses": "load", "with": {"source": "in", "layout": "watch", "source_options": {"setle": 1, "once": True}}},
            {"uses": "grayscale"},
            {"uses": "save", "with": {"out": "out"}},
        ],
    }
    plan = build_plan(raw, registry.steps(pm), label="w.toml", base_dir=tmp_path, run_dir=tmp_path / "run")
    summary = run_plan(plan, pm, show_progress=False)
    summary.pop("_exception", None)
    assert summary["exit_code"] == 2
    assert "steps[1] (load): source_options.setle: unknown option; did you mean settle?" in summary["error"]
    assert not (tmp_path / "out").exists()
