"""Scale-out on CPU with the gloo backend and two processes.

* two ranks trained with DDP hold identical weights after several steps, and
  sharded colorize writes every output exactly once (no collisions);
* ``torchrun --nproc-per-node 2 -m colorbatch run recipe.toml`` works, and only
  rank 0 writes the checkpoints and the training log.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")

TINY = dict(model="efficientnet-lite0", encoder_weights="none", size=64, batch_size=2, workers=0,
            threads=1, log_every=1, publish=False, epochs=2, val_fraction=0.0, lr=3e-3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _images(folder: Path, n: int, seed0: int = 0) -> Path:
    from PIL import Image

    for i in range(n):
        rng = np.random.default_rng(seed0 + i)
        small = (rng.random((3, 3, 3)) * 255).astype(np.uint8)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(small).resize((72, 64), Image.BICUBIC).save(folder / f"p{i:02d}.png")
    return folder


def _recipe(tmp: Path) -> Path:
    from colorbatch.testing import recipe_text

    steps = [
        ("load", {"source": str(tmp / "train")}),
        ("train", TINY),
        ("load", {"source": str(tmp / "inputs")}),
        ("colorize", {"size": 64, "workers": 0, "batch_size": 2}),
        ("save", {"out": str(tmp / "out")}),
    ]
    path = tmp / "ddp.toml"
    path.write_text(recipe_text(steps, name="ddp", run_dir=str(tmp / "run")))
    return path


def _rank_main(rank: int, world: int, port: int, tmp: str) -> None:
    """One rank: run the recipe through the runner; dump this rank's trained weights."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                      COLORBATCH_CACHE=str(Path(tmp) / "cache"))
    torch.set_num_threads(1)
    import colorbatch.training.loop as loop
    from colorbatch import registry
    from colorbatch.plugins import make_plugin_manager
    from colorbatch.recipe import load_plan
    from colorbatch.runner import run_plan

    seen = {}
    original = loop.Trainer.run

    def run(self):
        seen["trainer"] = self
        return original(self)

    loop.Trainer.run = run
    pm = make_plugin_manager(no_plugins=True)
    summary = run_plan(load_plan(Path(tmp) / "ddp.toml", registry.steps(pm)), pm, show_progress=False)
    trainer = seen["trainer"]
    assert trainer.distributed and dist.get_world_size() == world
    state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    torch.save({"state": state, "steps": trainer.step, "status": summary["status"],
                "ok": summary["ok"]}, Path(tmp) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_ranks_hold_identical_weights_and_colorize_shards_without_collisions(tmp_path):
    import torch.multiprocessing as mp

    _images(tmp_path / "train", 4)
    _images(tmp_path / "inputs", 5, seed0=50)
    _recipe(tmp_path)
    mp.spawn(_rank_main, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)

    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["status"] == r1["status"] == "ok"
    assert r0["steps"] == r1["steps"] == 2  # 4 images / 2 ranks / batch 2 = 1 step x 2 epochs
    from colorbatch.models import build_model

    torch.manual_seed(0)  # the trainer's seed: the same initial weights
    before = dict(build_model("efficientnet-lite0", "none", True).named_parameters())
    changed = 0
    for name, p0 in before.items():  # parameters; BatchNorm running stats are per rank
        assert torch.equal(r0["state"][name], r1["state"][name]), f"{name} differs between ranks"
        changed += not torch.equal(r0["state"][name], p0.detach())
    assert changed > 10  # training did move the weights

    # sharded colorize: every input written exactly once, each rank its own manifest
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("*.png")) == [f"p{i:02d}.png" for i in range(5)]
    assert r0["ok"] + r1["ok"] == 5 and min(r0["ok"], r1["ok"]) >= 2
    ids = []
    for manifest in out.glob(".colorbatch-manifest*.jsonl"):
        ids += [json.loads(line)["id"] for line in manifest.read_text().splitlines() if line.strip()]
    assert sorted(ids) == [f"p{i:02d}.png" for i in range(5)]
    # only rank 0 wrote checkpoints and the training log
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log if r["kind"] == "epoch"] == [1, 2]
    assert (tmp_path / "run" / "checkpoints" / "last.safetensors").is_file()


def test_torchrun_launch(tmp_path):
    from colorbatch.testing import recipe_text

    _images(tmp_path / "train", 4)
    recipe = tmp_path / "r.toml"
    recipe.write_text(recipe_text([("load", {"source": str(tmp_path / "train")}), ("train", dict(TINY, epochs=1))],
                                  name="tr", run_dir=str(tmp_path / "run")))
    env = dict(os.environ, OMP_NUM_THREADS="1", COLORBATCH_CACHE=str(tmp_path / "cache"), COLORBATCH_NO_PLUGINS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
           "-m", "colorbatch", "run", str(recipe), "--json"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["kind"] == "step"] == [1]  # 4 images / (2 ranks x 2) = 1 step, logged once
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["world_size"] == 2 and run["status"] == "ok"
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [
        "best.json", "best.safetensors", "last.json", "last.safetensors", "last.state.pt"]
