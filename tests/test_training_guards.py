"""Training mistakes are one clear line and exit 2, never an internal error or a bad model.

* a corrupt ``last.state.pt`` given to ``--resume``;
* training on a source where no image has colour: no training data, nothing published.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from _promise_lib import ENV, cli, error_lines
from colorbatch.testing import recipe_text, save_tiny_image

torch = pytest.importorskip("torch")

# ---- 7. a corrupt training state with --resume ----------------------------------------------------

TINY = dict(model="efficientnet-lite0", encoder_weights="none", size=64, batch_size=2, workers=0,
            threads=1, log_every=1, publish=False, epochs=1)


def _colour(path: Path, seed: int) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(small).resize((80, 80), Image.BICUBIC).save(path)
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    for i in range(2):
        _colour(root / "imgs" / f"c{i}.png", i)
    recipe = root / "r.toml"
    recipe.write_text(recipe_text([("load", {"source": str(root / "imgs")}), ("train", dict(TINY, val_fraction=0.0))],
                                  name="t", run_dir=str(root / "run")))
    r = cli("run", recipe, env={**ENV, "COLORBATCH_CACHE": str(root / "cache")})
    assert r.returncode == 0, r.stderr[-3000:]
    state = root / "run" / "checkpoints" / "last.state.pt"
    assert state.is_file()
    return recipe, state


def _garbage(path: Path):
    path.write_bytes(b"\x00garbage, not a torch file" * 10)


def _truncated(path: Path):
    path.write_bytes(path.read_bytes()[:200])


def _wrong_content(path: Path):
    torch.save({"hello": torch.zeros(2)}, path)


def _not_a_dict(path: Path):
    torch.save([1, 2, 3], path)


@pytest.mark.parametrize("damage", [_garbage, _truncated, _wrong_content, _not_a_dict],
                         ids=["garbage", "truncated", "wrong-content", "not-a-dict"])
def test_a_corrupt_training_state_with_resume_is_one_line(tmp_path, trained_run, damage):
    recipe, state = trained_run
    original = state.read_bytes()
    try:
        damage(state)
        r = cli("run", recipe, "--resume", env={**ENV, "COLORBATCH_CACHE": str(tmp_path / "cache")})
    finally:
        state.write_bytes(original)
    assert r.returncode == 2, r.stderr[-3000:]
    errors = error_lines(r.stderr)
    assert len(errors) == 1, r.stderr[-3000:]
    assert "last.state.pt" in errors[0] and "resume" in errors[0], errors[0]
    assert "weights_only" not in r.stderr and "Traceback" not in r.stderr


# ---- 4. no training data ------------------------------------------------------------------------


def test_training_on_gray_images_only_is_an_error_and_publishes_nothing(tmp_path):
    for i in range(3):
        save_tiny_image(tmp_path / "gray" / f"g{i}.png", size=(80, 80), mode="L", seed=i)
    save_tiny_image(tmp_path / "gray" / "g_rgb.png", size=(80, 80), mode="RGB", pattern="faded")
    recipe = tmp_path / "r.toml"
    recipe.write_text(recipe_text(
        [("load", {"source": str(tmp_path / "gray")}), ("train", dict(TINY, publish=True, val_fraction=0.0))],
        name="gray", run_dir=str(tmp_path / "run")))
    cache = tmp_path / "cache"
    r = cli("run", recipe, env={**ENV, "COLORBATCH_CACHE": str(cache)})
    assert r.returncode == 2, r.stderr[-3000:]
    errors = error_lines(r.stderr)
    assert len(errors) == 1 and "no training data" in errors[0] and "4 gray" in errors[0], r.stderr[-3000:]
    assert not list(cache.rglob("*.safetensors"))
    assert not list((tmp_path / "run").rglob("*.safetensors"))
    assert " ok, " not in r.stderr  # no summary line before a usage error
