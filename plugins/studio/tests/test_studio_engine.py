"""The studio's engine: previews with hints, sidecars, chroma, Save equal to `colorbatch colorize`, no-hint models,
the command's URL and its clean stop on Ctrl-C."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio_testlib import ENV, cli, write_folder
from colorbatch_studio.engine import ImageState, Studio, StudioError, glob_for

SIZE = 128


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int32)


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_a_hint_changes_the_preview_at_its_place_and_writes_the_sidecar(folder, tmp_path, models):
    from colorbatch.api import load_hints

    s = Studio(folder, tmp_path / "out", model=str(models["aware"]), size=SIZE)
    plain, _ = s.preview("a.png")
    st = s.parse_state("a.png", {"points": [{"x": 40, "y": 30, "radius": 4, "color": "#ff0000"}], "chroma": "auto"})
    hinted, seconds = s.preview("a.png", st)
    a, b = _png(plain), _png(hinted)
    redder = (b[..., 0] - b[..., 1]) - (a[..., 0] - a[..., 1])
    assert redder[27:34, 37:44].mean() > 20, redder[27:34, 37:44].mean()
    assert redder[27:34, 37:44].mean() > redder[100:, 130:].mean() + 10  # near the hint, not everywhere
    side = s.write_state("a.png", st)
    assert side == folder / "a.hints.json"
    hints = load_hints(side)
    assert [(p.x, p.y, p.radius, p.color) for p in hints.points] == [(40, 30, 4.0, "#ff0000")]
    assert s.describe("a.png")["points"] == [{"x": 40.0, "y": 30.0, "radius": 4.0, "color": "#ff0000"}]
    s.write_state("a.png", ImageState())  # the last hint removed: no sidecar left
    assert not side.exists()


def test_bad_hints_are_one_line_errors(folder, tmp_path, models):
    s = Studio(folder, tmp_path / "out", model=str(models["aware"]), size=SIZE)
    for body, words in [({"points": [{"x": 500, "y": 3, "color": "red"}]}, "outside"),
                        ({"points": [{"x": 5, "y": 3, "color": "blurple"}]}, "not a colour"),
                        ({"points": [], "chroma": 3}, "chroma"),
                        ({"points": [], "reference": "a.png"}, "gray")]:
        with pytest.raises(StudioError, match=words):
            s.parse_state("a.png", body)


def test_a_model_without_hint_inputs_reviews_and_adjusts_chroma_and_says_why_hints_are_off(folder, tmp_path, models):
    s = Studio(folder, tmp_path / "out", model=str(models["plain"]), size=SIZE)
    assert not s.colorizer.accepts_hints
    assert "takes no colour hints" in s.hints_reason and s.info()["hints_reason"] == s.hints_reason
    auto, _ = s.preview("a.png")
    pale, _ = s.preview("a.png", ImageState(chroma=0.3))
    chroma = lambda x: np.abs(x[..., 0] - x[..., 1]).mean() + np.abs(x[..., 1] - x[..., 2]).mean()  # noqa: E731
    assert chroma(_png(pale)) < chroma(_png(auto))
    st = s.parse_state("a.png", {"points": [{"x": 4, "y": 4, "color": "red"}]})
    with pytest.raises(StudioError, match="takes no colour hints"):
        s.preview("a.png", st)


def test_glob_for_names_exactly_one_file_rooted_at_the_folder(tmp_path):
    import glob

    for name in ("a.png", "ab.png", "[x].png", "!b.png", "sub/a.png", "sub*/a.png"):
        p = tmp_path / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    for name in ("a.png", "[x].png", "!b.png", "sub/a.png", "sub*/a.png"):
        pattern = glob_for(tmp_path, name)
        assert glob.glob(pattern) == [str(tmp_path / name)], (name, pattern)
        assert glob.escape(str(tmp_path)) == str(tmp_path) and pattern.startswith(str(tmp_path) + os.sep)


def _run_printed(command: str, out: Path):
    """Run the batch command the studio printed, as a user would paste it, into ``out``."""
    import shlex

    args = shlex.split(command)
    assert args[:2] == ["colorbatch", "colorize"], command
    args[args.index("--out") + 1] = str(out)
    r = cli(*args[1:])
    assert r.returncode == 0, r.stderr


def _save_and_compare(folder: Path, tmp_path: Path, model: Path, rel: str):
    out = tmp_path / "out"
    s = Studio(folder, out, model=str(model), size=SIZE)
    st = s.parse_state(rel, {"points": [{"x": 30, "y": 20, "radius": 5, "color": "#1f3a93"},
                                        {"x": 100, "y": 80, "radius": 3, "color": "gold"}], "chroma": 0.8})
    s.write_state(rel, st)
    saved = s.save(rel)
    assert saved["output"] == rel and (out / rel).is_file()
    # the chroma travels in the sidecar; the command fixes what changes float rounding
    assert "--chroma" not in saved["command"] and f"--size {SIZE}" in saved["command"]
    assert f"--batch-size 1 --threads {s.threads} --runtime torch" in saved["command"]
    batch = tmp_path / "batch"
    _run_printed(saved["command"], batch)
    return _pixels(out / rel), _pixels(batch / rel)


def test_save_gives_the_pixels_of_colorize_with_the_sidecar_one_image(tmp_path, models):
    folder = write_folder(tmp_path / "one", names=("sub/b.png",))
    page, batch = _save_and_compare(folder, tmp_path, models["aware"], "sub/b.png")
    assert page.shape == batch.shape and np.array_equal(page, batch)


def test_each_image_keeps_its_own_chroma_in_its_sidecar_and_one_batch_command_reproduces_all(folder, tmp_path, models):
    """Two images, two chroma settings (one with hints, one with a chroma alone): the plain colorize
    command gives every saved output byte for byte."""
    from colorbatch.api import load_hints

    out = tmp_path / "out"
    s = Studio(folder, out, model=str(models["aware"]), size=SIZE)
    s.write_state("a.png", s.parse_state("a.png", {"points": [], "chroma": 1.6}))
    st_b = s.parse_state("sub/b.png", {"points": [{"x": 30, "y": 20, "radius": 5, "color": "#1f3a93"}], "chroma": 0.4})
    s.write_state("sub/b.png", st_b)
    assert load_hints(folder / "a.hints.json").chroma == 1.6 and not load_hints(folder / "a.hints.json").points
    assert load_hints(folder / "sub" / "b.hints.json").chroma == 0.4
    assert not (out / ".studio" / "state.json").exists()
    # a new studio on the same folder reads the chroma back from the sidecars
    again = Studio(folder, out, model=str(models["aware"]), size=SIZE)
    badges = {it["id"]: (it["hints"], it["chroma"]) for it in again.page(0, 48)["items"]}
    assert badges == {"a.png": (False, 1.6), "sub/b.png": (True, 0.4)}, badges
    assert again.describe("a.png")["chroma"] == 1.6 and again.state("sub/b.png").chroma == 0.4
    for rel in ("a.png", "sub/b.png"):
        command = again.save(rel)["command"]
        assert "--chroma" not in command
    batch = tmp_path / "batch"
    _run_printed(command, batch)
    for rel in ("a.png", "sub/b.png"):
        assert np.array_equal(_pixels(out / rel), _pixels(batch / rel)), rel
    plain = tmp_path / "plain"
    os.remove(folder / "a.hints.json")
    _run_printed(command, plain)
    spread = lambda x: np.abs(x.astype(int) - x.astype(int).mean(-1, keepdims=True)).mean()  # noqa: E731
    assert spread(_pixels(batch / "a.png")) > spread(_pixels(plain / "a.png")) + 1  # the 1.6 was applied
    # back to auto with nothing else: the sidecar goes
    again.write_state("sub/b.png", ImageState())
    assert not (folder / "sub" / "b.hints.json").exists()


def test_save_gives_the_pixels_of_colorize_with_the_sidecar_whole_folder(folder, tmp_path, models):
    """Save runs one image, the batch command the whole folder: the core takes the same pixel
    path for runs of any size, so the bytes agree."""
    page, batch = _save_and_compare(folder, tmp_path, models["aware"], "sub/b.png")
    assert page.shape == batch.shape and np.array_equal(page, batch)


def test_the_command_prints_its_url_and_stops_cleanly_on_ctrl_c(folder, tmp_path, models):
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "colorbatch", "studio", str(folder), "--out", str(tmp_path / "out"),
                             "--model", str(models["plain"]), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), (url, proc.stderr.read() if proc.poll() is not None else "")
        info = json.loads(urllib.request.urlopen(url + "api/info", timeout=60).read())
        assert info["count"] == 2 and info["accepts_hints"] is False and "no colour hints" in info["hints_reason"]
        page = urllib.request.urlopen(url, timeout=60).read().decode()
        assert "colorbatch studio" in page
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(30)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert rc == 0, err
    assert "studio stopped" in err and "Traceback" not in err
    assert "no colour hints" in err  # said on the terminal too


def test_the_grid_lists_a_large_folder_at_once(tmp_path, models):
    folder = tmp_path / "many"
    folder.mkdir()
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 128, np.uint8)).save(buf, "PNG")
    for i in range(2000):
        (folder / f"img{i:04d}.png").write_bytes(buf.getvalue())
    t0 = time.perf_counter()
    s = Studio(folder, tmp_path / "out", model=str(models["plain"]), size=SIZE)
    s.refresh()
    page = s.page(0, 48)
    listed = time.perf_counter() - t0
    assert page["total"] == 2000 and page["pages"] == 42 and len(page["items"]) == 48
    assert listed < 10, listed  # the figure with a browser is in docs/studio.md
    assert s.thumbs.get("img0000.png")[:2] == b"\xff\xd8"
    assert any((tmp_path / "out" / ".studio" / "thumbs").rglob("*.jpg"))


def test_the_page_shows_what_save_writes(tmp_path, models):
    """For an image within the display size the preview is the saved output, pixel for pixel."""
    folder = write_folder(tmp_path / "one", names=("a.png",))
    s = Studio(folder, tmp_path / "out", model=str(models["aware"]), size=SIZE)
    st = s.parse_state("a.png", {"points": [{"x": 30, "y": 40, "radius": 4, "color": "#ff0000"}], "chroma": 1.2})
    s.write_state("a.png", st)
    shown, _ = s.preview("a.png", st)  # made before any Save: the studio loaded the kernels itself
    s.save("a.png")
    assert np.array_equal(_png(shown), _pixels(tmp_path / "out" / "a.png").astype(np.int32))
