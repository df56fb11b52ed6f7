"""The shipped training recipes: train_ilsvrc on a miniature ILSVRC2017_DET tree, and
the quickstart main job end to end with tiny overrides."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture(autouse=True)
def _small(monkeypatch, tmp_path):
    torch.set_num_threads(1)
    monkeypatch.setenv("COLORBATCH_CACHE", str(tmp_path / "cache"))


def _jpeg(path: Path, seed: int, size=(72, 56)) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = (rng.random((3, 3, 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small).resize(size, Image.BICUBIC).save(path, quality=90)


def mini_ilsvrc(root: Path) -> Path:
    """data/ILSVRC/{Data/DET/{train,val}, ImageSets/DET/{train,val}.txt} with a few tiny JPEGs."""
    det = root / "data" / "ILSVRC" / "Data" / "DET"
    sets = root / "data" / "ILSVRC" / "ImageSets" / "DET"
    train_names = [f"ILSVRC2013_train/n01443537/n01443537_{i:05d}" for i in range(3)]
    train_names += [f"ILSVRC2014_train_0000/ILSVRC2014_train_{i:08d}" for i in range(3)]
    val_names = [f"ILSVRC2012_val_{i:08d}" for i in range(1, 3)]
    for i, name in enumerate(train_names):
        _jpeg(det / "train" / f"{name}.JPEG", i)
    for i, name in enumerate(val_names):
        _jpeg(det / "val" / f"{name}.JPEG", 100 + i)
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("".join(f"{n} {i + 1}\n" for i, n in enumerate(train_names)))
    (sets / "val.txt").write_text("".join(f"{n} {i + 1}\n" for i, n in enumerate(val_names)))
    return root


def test_shipped_recipes_validate():
    from colorbatch import registry
    from colorbatch.plugins import make_plugin_manager
    from colorbatch.recipe import load_plan

    pm = make_plugin_manager()  # the quickstart ends with the report plugin's step
    names = {p.name for p in RECIPES.glob("*.toml")}
    assert {"quickstart.toml", "train_ilsvrc.toml", "evaluate.toml", "colorize.toml"} <= names
    for name in ("quickstart.toml", "train_ilsvrc.toml", "evaluate.toml", "colorize.toml"):
        plan = load_plan(RECIPES / name, registry.steps(pm))
        assert plan.steps


def test_train_ilsvrc_recipe_on_a_miniature_tree(tmp_path, run_recipe):
    mini_ilsvrc(tmp_path)
    recipe = tmp_path / "train_ilsvrc.toml"
    shutil.copy(RECIPES / "train_ilsvrc.toml", recipe)  # `data/...` resolves next to it
    overrides = [
        "steps.train.encoder_weights=none",  # offline: the reference weights are a download
        "steps.train.size=64", "steps.train.batch_size=2", "steps.train.epochs=1",
        "steps.train.max_steps=2", "steps.train.workers=0", "steps.train.threads=1",
        "steps.train.log_every=1", "steps.train.warmup_steps=0", "steps.train.publish=false",
        "steps.train.device=cpu", f"run_dir={tmp_path / 'run'}",
    ]
    summary = run_recipe(recipe, overrides=overrides)
    assert summary["status"] == "ok", summary
    run = Path(summary["run_dir"])
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    steps = [r for r in log if r["kind"] == "step"]
    epoch = [r for r in log if r["kind"] == "epoch"][-1]
    assert len(steps) == 2
    assert epoch["val_loss"] is not None and epoch["val_loss"] > 0  # the val split was used
    assert "6 images (2 validation images" in summary["console"]
    meta = json.loads((run / "checkpoints" / "best.json").read_text())
    assert meta["model"]["encoder"] == "resnet50"
    assert meta["config"]["trained_with"]["loss"] == "mse"
    assert Path(summary["state"]["checkpoint"]).is_file()


def test_quickstart_end_to_end_with_tiny_overrides(tmp_path, run_recipe):
    overrides = [
        "steps.train.encoder_weights=none", "steps.train.size=64", "steps.train.batch_size=4",
        "steps.train.repeat=1", "steps.train.epochs=1", "steps.train.time_budget=30",
        "steps.train.workers=0", "steps.train.threads=1", "steps.colorize.size=64",
        "steps.colorize.workers=0", f"run_dir={tmp_path / 'qs'}",
    ]
    from colorbatch.plugins import make_plugin_manager

    # installed plugins included: the quickstart ends with the report plugin's step
    summary = run_recipe(RECIPES / "quickstart.toml", pm=make_plugin_manager(), overrides=overrides)
    assert summary["status"] == "ok", summary
    run = Path(summary["run_dir"])
    heldout = sorted(p.name for p in (run / "samples" / "heldout").iterdir())
    assert heldout and all((run / "colorized" / name).is_file() for name in heldout)
    report = json.loads((run / "metrics.json").read_text())
    assert sorted(r["item"] for r in report["items"]) == heldout
    assert (run / "report" / "index.html").is_file() and (run / "report" / "report.json").is_file()
    # publish = "if-better": the tiny model is published only if it beats the model colorize
    # would use (the shipped default, where this installation has one), and the run says which
    from colorbatch.models.checkpoint import discover_model, shipped_model

    console = summary["console"]
    if shipped_model() is None:
        assert "no model to compare with; publishing" in console
        assert discover_model(None).parent == tmp_path / "cache" / "models"
    elif "not published" in console:
        assert discover_model(None) == shipped_model()
        assert "side by side on these 3 photos" in console  # evaluate's compare = "shipped"
    else:
        assert "publishing it" in console and discover_model(None).parent == tmp_path / "cache" / "models"
