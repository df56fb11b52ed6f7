"""A film is never its own output: `colorize film.mp4 --out film.mp4`, with or without --overwrite."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from video_testlib import make_clip


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
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLORBATCH_VIDEO_CHUNK_FRAMES": "20", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "colorbatch", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=600)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("flags", [["--overwrite"], []], ids=["overwrite", "plain"])
def test_the_input_film_is_never_replaced(tmp_path, model_path, flags):
    film = make_clip(tmp_path / "film.mp4", seconds=0.4)
    before = _sha(film)
    r = cli("colorize", "film.mp4", "--out", "film.mp4", "--model", model_path, "--size", "64",
            "--workers", "0", "--device", "cpu", *flags, cwd=tmp_path)
    assert _sha(film) == before
    assert r.returncode == 2, r.stderr[-3000:]
    errors = [l for l in r.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "film.mp4" in errors[0] and "input" in errors[0], r.stderr[-3000:]
    assert "--overwrite" in errors[0] and "whatever" in errors[0]  # says that no flag changes this
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4"]  # no work files either


def test_the_input_film_is_never_replaced_through_a_link(tmp_path, model_path):
    film = make_clip(tmp_path / "film.mp4", seconds=0.4)
    (tmp_path / "same.mp4").symlink_to(film)
    before = _sha(film)
    r = cli("colorize", "film.mp4", "--out", "same.mp4", "--model", model_path, "--size", "64",
            "--workers", "0", "--device", "cpu", "--overwrite", cwd=tmp_path)
    assert _sha(film) == before
    assert r.returncode == 2, r.stderr[-3000:]
