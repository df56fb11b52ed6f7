"""Fixtures for the watch plugin's tests: a tiny untrained checkpoint and image writers."""
from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained EfficientNet-Lite0 model: the plumbing, not the colours, is under test."""
    torch = pytest.importorskip("torch")
    from colorbatch.models import build_model
    from colorbatch.models.checkpoint import save_checkpoint

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = build_model(encoder="efficientnet-lite0", encoder_weights="none")
        path = save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors", model, {"test": True})
    finally:
        torch.set_num_threads(threads)
    return path


def png_bytes(seed: int, size: int = 32, fmt: str = "PNG") -> bytes:
    """A small gray image with a gradient and a seed-dependent square."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    arr = (x * 255 // max(1, size - 1) // 2 + y * 2).astype(np.int32)
    s, o = size // 3, int(rng.integers(0, size // 2))
    arr[o : o + s, o : o + s] = int(rng.integers(0, 256))
    buf = io.BytesIO()
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L").save(buf, fmt)
    return buf.getvalue()


class Watcher:
    """`colorbatch watch` in a subprocess, with its stderr collected into a file."""

    def __init__(self, args: list[str], cwd: Path, log: Path):
        env = dict(os.environ)
        env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "COLORBATCH_NO_PLUGINS": "",
                    "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
        self.log = log
        self._fh = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "colorbatch", "watch", *args],
            cwd=cwd, env=env, stdout=self._fh, stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, cond, timeout: float = 60.0, what: str = "") -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"watcher exited ({self.proc.returncode}) waiting for {what}:\n{self.text()}")
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}:\n{self.text()[-4000:]}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"watcher did not stop:\n{self.text()[-4000:]}")
        self._fh.close()
        return code

    def wait(self, timeout: float = 60.0) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            self._fh.close()
        return code


@pytest.fixture
def make_png():
    return png_bytes


@pytest.fixture
def start_watcher(tmp_path):
    """start_watcher(args) -> Watcher; every watcher still running at the end is killed."""
    started: list[Watcher] = []

    def start(args, name="watch"):
        w = Watcher([str(a) for a in args], tmp_path, tmp_path / f"{name}-{len(started)}.log")
        started.append(w)
        return w

    yield start
    for w in started:
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait()
