"""Tests of the example plugin, written with the fixtures colorbatch ships
(``colorbatch_pm``, ``tiny_image``, ``write_recipe``, ``run_recipe``): no
conftest.py needed, no installed plugins other than the one under test."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import colorbatch_autocontrast
from colorbatch_autocontrast.step import Options, stretch_L


def test_stretch_maps_the_percentiles_to_black_and_white():
    L = np.linspace(40, 60, 10_000, dtype=np.float32).reshape(100, 100)
    out, info = stretch_L(L, Options(cutoff=0, max_gain=10))
    assert out.min() == pytest.approx(0, abs=1e-3) and out.max() == pytest.approx(100, abs=1e-3)
    assert info["low"] == pytest.approx(40) and info["gain"] == pytest.approx(5)
    # the order of tones is kept
    assert np.all(np.diff(out.ravel()) >= 0)


def test_gain_is_capped_and_strength_blends():
    L = np.linspace(45, 55, 400, dtype=np.float32).reshape(20, 20)
    out, info = stretch_L(L, Options(cutoff=0, max_gain=2))
    assert info["gain"] == 2 and out.min() == pytest.approx(40) and out.max() == pytest.approx(60)
    half, _ = stretch_L(L, Options(cutoff=0, max_gain=2, strength=0.5))
    np.testing.assert_allclose(half, (L + out) / 2, atol=1e-4)


def test_flat_images_are_left_alone():
    L = np.full((8, 8), 50, np.float32)
    out, info = stretch_L(L, Options())
    assert out is L and info["skipped"] == "flat"


def test_option_mistakes_are_caught():
    with pytest.raises(ValueError, match="white"):
        Options(black=80, white=20)


def test_in_a_recipe(colorbatch_pm, tiny_image, write_recipe, run_recipe, tmp_path):
    src = tiny_image("scans/faded.png", size=(64, 48), mode="L", pattern="faded")
    pm = colorbatch_pm(colorbatch_autocontrast)  # the core plugin plus this one, nothing else installed
    recipe = write_recipe(
        [
            {"uses": "load", "with": {"source": "scans"}},
            {"uses": "autocontrast", "with": {"cutoff": 1.0}},
            {"uses": "save", "with": {"out": "out"}},
        ]
    )
    summary = run_recipe(recipe, pm=pm)
    assert (summary["ok"], summary["failed"], summary["exit_code"]) == (1, 0, 0)
    before = np.asarray(Image.open(src), dtype=np.float32)
    after = np.asarray(Image.open(tmp_path / "out" / "faded.png"), dtype=np.float32)
    assert after.shape == before.shape
    assert np.ptp(after) > 2.5 * np.ptp(before)  # the faded range is restored


def test_after_grayscale_the_output_is_rendered_again(colorbatch_pm, tiny_image, write_recipe, run_recipe, tmp_path):
    tiny_image("scans/faded.png", mode="L", pattern="faded")
    pm = colorbatch_pm(colorbatch_autocontrast)
    recipe = write_recipe([("load", {"source": "scans"}), ("grayscale", {}), ("autocontrast", {}), ("save", {"out": "out"})])
    assert run_recipe(recipe, pm=pm)["ok"] == 1
    out = np.asarray(Image.open(tmp_path / "out" / "faded.png"))
    assert out.min() < 30 and out.max() > 225


def test_a_misspelt_option_is_reported(colorbatch_pm, write_recipe, run_recipe, tmp_path):
    from colorbatch.errors import RecipeError

    (tmp_path / "scans").mkdir()
    pm = colorbatch_pm(colorbatch_autocontrast)
    recipe = write_recipe([("load", {"source": "scans"}), ("autocontrast", {"cutof": 2})])
    with pytest.raises(RecipeError, match="did you mean cutoff"):
        run_recipe(recipe, pm=pm)


def test_registered_through_the_entry_point():
    from importlib import metadata

    eps = {ep.name: ep.value for ep in metadata.entry_points(group="colorbatch")}
    if "autocontrast" not in eps:
        pytest.skip("colorbatch-autocontrast is not installed (pip install -e plugins/autocontrast)")
    assert eps["autocontrast"] == "colorbatch_autocontrast"
    from colorbatch.plugins import make_plugin_manager
    from colorbatch import registry

    pm = make_plugin_manager()
    assert pm.has_plugin("autocontrast") and not pm.load_errors
    assert "autocontrast" in registry.steps(pm)
