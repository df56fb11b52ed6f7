"""Checkpoints without encoder tensors, the calibrated colour strength, and the shipped default model."""
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from colorbatch.models import build_model
from colorbatch.models.checkpoint import (
    colour_strength,
    load_checkpoint,
    read_meta,
    save_checkpoint,
    shipped_model,
    update_meta,
)

ROOT = Path(__file__).resolve().parent.parent


def _classify_model():
    torch.manual_seed(0)
    return build_model("efficientnet-lite0", "imagenet", True, head="classify", out_stride=4).eval()


def test_checkpoint_without_encoder_rebuilds_it_from_the_weights_package(tmp_path):
    model = _classify_model()
    path = save_checkpoint(tmp_path / "m.safetensors", model, {}, omit_encoder=True)
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        keys = list(f.keys())
    assert keys and not any(k.startswith("encoder.") for k in keys)
    assert read_meta(path)["encoder_tensors"] == "weights-package"
    loaded, _ = load_checkpoint(path)
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_only_a_frozen_imagenet_encoder_may_be_left_out(tmp_path):
    from colorbatch.errors import ColorbatchError

    with pytest.raises(ColorbatchError, match="frozen encoder"):
        save_checkpoint(tmp_path / "m.safetensors", build_model("efficientnet-lite0", "none"), {}, omit_encoder=True)


def test_chroma_auto_reads_the_calibration(tmp_path):
    from colorbatch.colorizer import Colorizer

    path = save_checkpoint(tmp_path / "m.safetensors", _classify_model(), {}, omit_encoder=True)
    plain = Colorizer(path, "cpu", 64, 1)
    assert (plain.temperature, plain.chroma) == (1.0, 1.0)
    update_meta(path, calibration={"temperature": 0.5, "chroma": 1.3})
    auto = Colorizer(path, "cpu", 64, 1)  # "auto" is the default
    assert (auto.temperature, auto.chroma) == (0.5, 1.3)
    assert auto.model_id == plain.model_id  # the calibration belongs to the model
    manual = Colorizer(path, "cpu", 64, 1, chroma=0.8)
    assert (manual.temperature, manual.chroma) == (0.5, 0.8)
    assert manual.model_id.endswith("@chroma0.8")
    L = np.linspace(20, 80, 64 * 48, dtype=np.float32).reshape(48, 64)
    a = np.abs(auto.predict_ab([L])[0]).mean()
    b = np.abs(manual.predict_ab([L])[0]).mean()
    assert a > b  # 1.3 vs 0.8 at the same temperature


def test_colour_strength_ignores_absurd_calibration():
    assert colour_strength({"calibration": {"temperature": "hot", "chroma": 9}}) == (1.0, 1.0, "")
    assert colour_strength({"calibration": {"temperature": 0.4, "chroma": 9}}) == (0.4, 1.0, "")


# --------------------------------------------------------------------------- #
# the shipped default
# --------------------------------------------------------------------------- #

needs_shipped = pytest.mark.skipif(shipped_model() is None, reason="no shipped default model in this checkout")


@needs_shipped
def test_shipped_weights_match_the_model_card_checksum_and_size():
    path = shipped_model()
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.stat().st_size <= 15 * 1024 * 1024
    assert read_meta(path)["sha256"] == sha
    card = (ROOT / "docs" / "model-card.md").read_text(encoding="utf-8")
    assert sha in re.findall(r"[0-9a-f]{64}", card), "docs/model-card.md must state the shipped weights' sha256"


@needs_shipped
def test_shipped_model_is_found_with_an_empty_cache_and_loads_offline(tmp_path, monkeypatch):
    from colorbatch.models.checkpoint import discover_model_why

    monkeypatch.setenv("COLORBATCH_CACHE", str(tmp_path / "empty"))
    monkeypatch.delenv("COLORBATCH_MODEL", raising=False)
    path, why = discover_model_why(None)
    assert path == shipped_model() and "ships with colorbatch" in why
    model, meta = load_checkpoint(path)
    assert meta["calibration"]["temperature"] > 0 and meta["calibration"]["chroma"] > 0
    assert all(torch.isfinite(p).all() for p in model.parameters())


@needs_shipped
def test_shipped_model_beats_gray_on_the_sample_photos_the_quickstart_holds_out():
    from colorbatch import samples
    from colorbatch.colorizer import Colorizer
    from colorbatch.images import read_image
    from colorbatch.metrics import rgb_to_lab
    from colorbatch.training.calibrate import gray_psnr, image_scores

    held = [p for p, split in samples.available() if split == "heldout"]
    if not held:
        pytest.skip("the sample-photo packages (scikit-image, scikit-learn, matplotlib) are not installed")
    colorizer = Colorizer(shipped_model(), "cpu", 512, 1)
    gains = []
    for p in held:
        rgb = np.asarray(read_image(p).pixels, dtype=np.float32)
        L = rgb_to_lab(rgb)[..., 0]
        ab = colorizer.predict_ab([L])[0]
        gains.append(image_scores(rgb, L, ab)["psnr"] - gray_psnr(rgb, L))
    assert np.mean(gains) > 0, f"PSNR gains over gray: {gains}"


def test_evaluate_compares_with_another_model_side_by_side(tmp_path, tiny_image, write_recipe, run_recipe):
    model = save_checkpoint(tmp_path / "m.safetensors", _classify_model(), {}, omit_encoder=True)
    other = save_checkpoint(tmp_path / "o.safetensors", build_model("efficientnet-lite0", "none"), {})
    for name in ("a.png", "b.png"):
        tiny_image(f"photos/{name}", size=(48, 40), mode="RGB", pattern="noise")
    recipe = write_recipe([
        ("load", {"source": "photos"}),
        ("colorize", {"model": str(model), "size": 64, "workers": 0}),
        ("evaluate", {"compare": str(other), "compare_size": 64}),
    ])
    summary = run_recipe(recipe)
    assert summary["status"] == "ok", summary
    import json

    rows = json.loads((Path(summary["run_dir"]) / "metrics.json").read_text())["items"]
    assert len(rows) == 2 and all("compare_psnr" in r and "psnr" in r for r in rows)
    assert "side by side on these 2 photos" in summary["console"]
    assert summary["console"].count("beats gray on") == 2  # this run and the compared model
