"""publish = "if-better": a training run never replaces a better model colorize would use."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from colorbatch.models import build_model
from colorbatch.models.checkpoint import save_checkpoint


def _constant_model(path: Path, a_star: float) -> Path:
    """A model whose output is a*b* = (a_star, 0) everywhere (0: exactly the gray input)."""
    model = build_model("efficientnet-lite0", "none")
    with torch.no_grad():
        model.decoder.head.weight.zero_()
        model.decoder.head.bias.copy_(torch.tensor([math.atanh(a_star / 128.0), 0.0]))
    return save_checkpoint(path, model, {})


def _photos(n=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):  # smooth colour fields, not pure noise
        base = rng.random((6, 8, 3)).astype(np.float32)
        out.append(np.kron(base, np.ones((8, 8, 1), np.float32)))
    return out


def _trainer(tmp_path):
    logs = []
    ctx = SimpleNamespace(log=logs.append, warn=logs.append)
    t = SimpleNamespace(o=SimpleNamespace(calibrate_size=64), val_sources=["x"], ctx=ctx,
                        _val_rgb=_photos(), ckpt_dir=tmp_path)
    return t, logs


def test_a_worse_model_is_not_published(tmp_path, monkeypatch):
    from colorbatch.models import checkpoint
    from colorbatch.training.finish import beats_current

    monkeypatch.setenv("COLORBATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COLORBATCH_MODEL", raising=False)
    gray = _constant_model(tmp_path / "gray.safetensors", 0.0)
    garish = _constant_model(tmp_path / "garish.safetensors", 100.0)
    monkeypatch.setattr(checkpoint, "shipped_model", lambda: gray)
    trainer, logs = _trainer(tmp_path)
    assert beats_current(trainer, garish) is False
    assert any("not published" in line for line in logs)
    assert any("trained now" in line for line in logs) and any("current" in line for line in logs)
    monkeypatch.setattr(checkpoint, "shipped_model", lambda: garish)
    trainer, logs = _trainer(tmp_path)
    assert beats_current(trainer, gray) is True


def test_if_better_in_a_recipe_keeps_the_cache_empty_when_the_default_is_better(
        tmp_path, monkeypatch, tiny_image, write_recipe, run_recipe):
    from colorbatch.models import checkpoint

    monkeypatch.setenv("COLORBATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("COLORBATCH_MODEL", raising=False)
    for i in range(4):
        tiny_image(f"photos/p{i}.png", size=(64, 48), mode="RGB", pattern="gradient")
    # a "trained" model can only lose against a current default that is exact on these
    # photos' colour if it is garish; make training produce the garish one by starting
    # from it and not learning (lr ~ 0), against a gray current default
    gray = _constant_model(tmp_path / "gray.safetensors", 0.0)
    monkeypatch.setattr(checkpoint, "shipped_model", lambda: gray)
    garish = build_model("efficientnet-lite0", "none")
    with torch.no_grad():
        garish.decoder.head.weight.zero_()
        garish.decoder.head.bias.copy_(torch.tensor([math.atanh(100 / 128), 0.0]))
    import colorbatch.models as models_pkg

    real_build = models_pkg.build_model
    monkeypatch.setattr(models_pkg, "build_model", lambda *a, **k: garish if k.get("head") == "regress" and
                        a[1:2] == ("none",) else real_build(*a, **k))
    recipe = write_recipe([
        ("load", {"source": "photos"}),
        ("train", {"encoder_weights": "none", "size": 32, "batch_size": 2, "max_steps": 1, "workers": 0,
                   "threads": 1, "lr": 1e-9, "val_source": "photos", "publish": "if-better",
                   "calibrate": False, "calibrate_size": 64, "log_every": 0}),
    ])
    summary = run_recipe(recipe)
    assert summary["status"] == "ok", summary
    assert "not published" in summary["console"]
    assert not (tmp_path / "cache" / "models").exists() or not list((tmp_path / "cache" / "models").glob("*.safetensors"))
