"""`colorbatch colorize film.mp4 --out film_color.mp4` through the real CLI, model and plugin entry point."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from video_testlib import audio_md5, make_clip

from colorbatch_video.source import read_info


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from colorbatch.models import build_model
    from colorbatch.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_model("efficientnet-lite0", "none", widths=(32, 16, 16, 16, 16))
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors", model, {"test": True})


def cli(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLORBATCH_VIDEO_CHUNK_FRAMES": "20"}
    return subprocess.run([sys.executable, "-m", "colorbatch", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


def test_cli_colorize_film_to_file(tmp_path, model_path):
    film = make_clip(tmp_path / "film.mp4", seconds=1.6)
    args = ["colorize", "film.mp4", "--out", "film_color.mp4", "--model", model_path, "--size", "64",
            "--workers", "0", "--device", "cpu", "--json"]
    res = cli(*args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["ok"] == 40 and summary["failed"] == 0
    out = tmp_path / "film_color.mp4"
    info, src = read_info(out), read_info(film)
    assert info.packets == 40 and info.fps == src.fps and (info.width, info.height) == (96, 64)
    assert audio_md5(out) == audio_md5(film)
    again = cli(*args, cwd=tmp_path)  # the output file exists: everything is skipped
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["skipped"] == 40
