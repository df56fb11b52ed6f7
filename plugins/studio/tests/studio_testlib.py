"""Helpers for the studio's tests: small models, gray scenes, the CLI, a live server."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ENV = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}


def _net(hints: bool):
    """A small model (untrained decoder, ImageNet encoder) whose hint inputs have some weight."""
    import torch

    from colorbatch.models import build_model

    torch.manual_seed(0)
    m = build_model("efficientnet-lite0", "imagenet", True, head="classify", out_stride=4, hints=hints,
                    widths=(32, 16, 16, 16, 16)).eval()
    if hints:
        for p in list(m.decoder.hint_local.parameters()) + list(m.decoder.hint_global.parameters()):
            p.data.normal_(0, 0.05)
    return m


def scene(seed: int, size=(120, 160)) -> np.ndarray:
    """A gray photo-like image: smooth shapes of different lightness (uint8 H x W)."""
    rng = np.random.default_rng(seed)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 90 + 40 * np.sin(xx / 17.0 + seed) + 30 * np.cos(yy / 11.0)
    for _ in range(4):
        cy, cx, r = rng.integers(0, h), rng.integers(0, w), rng.integers(10, 30)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.integers(40, 220)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_folder(root: Path, names=("a.png", "sub/b.png")) -> Path:
    from PIL import Image

    for k, name in enumerate(names):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(scene(k)).save(p)
    return root


def cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "colorbatch", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=timeout)


class Live:
    """A studio served by uvicorn in a thread on a free port of 127.0.0.1."""

    def __init__(self, studio):
        from colorbatch_studio.server import bind, build_app, make_server, url_of

        self.studio = studio
        self.sock = bind("127.0.0.1", 0)
        self.url = url_of(self.sock)
        self.port = self.sock.getsockname()[1]
        self.server = make_server(build_app(studio), self.sock)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        assert self.server.started, "the server did not start"

    def raw_get(self, target: str) -> tuple[int, bytes]:
        """GET ``target`` exactly as written (no client-side normalisation of '..')."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.putrequest("GET", target, skip_accept_encoding=True)
            conn.endheaders()
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


