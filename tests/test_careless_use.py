"""Careless use: each mistake is one clear line, and nothing the user gave is changed.

``--out name.jpg`` for one input, FIFOs and devices as inputs, file names with terminal
escape sequences, usage errors without a summary line, the strict plugin error,
``COLORBATCH_MAX_PIXELS`` out of range, and the notes the README promises (animated
GIF, multi-page TIFF).
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from _promise_lib import ENV, cli, error_lines, tiny_model
from colorbatch.errors import ImageReadError
from colorbatch.testing import save_tiny_image

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.set_num_threads(1)
    return tiny_model(tmp_path_factory.mktemp("model"))


def _colorize(src, out, model_path, *extra, env=None):
    return cli("colorize", src, "--out", out, "-m", model_path, "-j", "0", "--size", "64", *extra, env=env)


def test_out_named_like_an_image_for_one_input_is_refused(tmp_path, model_path):
    a = save_tiny_image(tmp_path / "a.png", mode="L")
    r = _colorize(a, tmp_path / "a_color.jpg", model_path)
    assert r.returncode == 2, r.stderr
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and "a_color.jpg" in errors[0] and "folder" in errors[0], r.stderr
    assert not (tmp_path / "a_color.jpg").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_not_called_an_empty_file(tmp_path):
    from colorbatch.images import read_image

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageReadError) as info:
        read_image(fifo)  # must not block on open either
    assert "named pipe" in str(info.value) and "empty" not in str(info.value)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_not_called_an_empty_file(tmp_path):
    from colorbatch.images import read_image

    with pytest.raises(ImageReadError) as info:
        read_image("/dev/zero")
    assert "device" in str(info.value) and "empty" not in str(info.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_in_a_folder_fails_that_item_only(tmp_path, model_path):
    src = tmp_path / "in"
    save_tiny_image(src / "a.png", mode="L")
    os.mkfifo(src / "pipe.png")
    r = _colorize(src, tmp_path / "out", model_path, "--json")
    assert r.returncode == 1, r.stderr
    s = json.loads(r.stdout)
    assert s["ok"] == 1 and s["failed"] == 1 and "named pipe" in s["failures"][0]["error"]


def test_file_names_with_terminal_escapes_are_printed_escaped(tmp_path, model_path):
    src = tmp_path / "in"
    save_tiny_image(src / "a.png", mode="L")
    bad = src / "evil\x1b]0;owned\x07\x1b[2J.png"
    bad.write_text("not an image")
    r = _colorize(src, tmp_path / "out", model_path)
    assert r.returncode == 1, r.stderr
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr
    assert "evil\\x1b]0;owned\\x07\\x1b[2J.png" in r.stderr, r.stderr


def test_a_usage_error_prints_no_summary_line(tmp_path):
    save_tiny_image(tmp_path / "in" / "a.png", mode="L")
    env = {**ENV, "COLORBATCH_CACHE": str(tmp_path / "empty-cache")}
    env.pop("COLORBATCH_MODEL", None)
    missing = tmp_path / "missing.safetensors"
    r = cli("colorize", tmp_path / "in", "--out", tmp_path / "out", "--model", missing, env=env)
    assert r.returncode == 2, r.stderr
    assert error_lines(r.stderr) and "file not found" in r.stderr
    assert " ok, " not in r.stderr, r.stderr


def test_the_strict_plugin_error_does_not_say_skipped(monkeypatch):
    from colorbatch import plugins

    class BrokenEntryPoint:
        name = "broken"
        dist = None

        def load(self):
            raise ImportError("No module named 'nowhere'")

    monkeypatch.setattr(plugins, "_entry_points", lambda: [BrokenEntryPoint()])
    pm = plugins.PluginManager()
    with pytest.raises(plugins.PluginError) as info:
        plugins.load_entry_point_plugins(pm, strict=True)
    text = str(info.value)
    assert "broken" in text and "nowhere" in text and "skipped" not in text, text


@pytest.mark.parametrize("value", ["-5", "inf", "nan", "lots"])
def test_max_pixels_out_of_range_is_one_line_and_exit_2(tmp_path, model_path, value):
    save_tiny_image(tmp_path / "in" / "a.png", mode="L")
    r = _colorize(tmp_path / "in", tmp_path / "out", model_path, env={**ENV, "COLORBATCH_MAX_PIXELS": value})
    assert r.returncode == 2, r.stderr
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and "COLORBATCH_MAX_PIXELS" in errors[0], r.stderr
    assert "failed:" not in r.stderr


def test_max_pixels_zero_and_numbers_are_accepted():
    from colorbatch.images import max_pixels_limit

    os.environ.pop("COLORBATCH_MAX_PIXELS", None)
    assert max_pixels_limit(0) == 0 and max_pixels_limit(5) == 5


def test_animated_and_multi_page_inputs_get_their_note(tmp_path, model_path):
    src = tmp_path / "in"
    src.mkdir()
    frames = [Image.fromarray(np.full((24, 32), v, np.uint8)) for v in (40, 200, 120)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    frames[0].save(src / "pages.tif", save_all=True, append_images=frames[1:])
    r = _colorize(src, tmp_path / "out", model_path)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert any("anim.gif" in l and "animated (3 frames): first frame used" in l for l in lines), r.stderr
    assert any("pages.tif" in l and "multi-page (3 pages): first page used" in l for l in lines), r.stderr
