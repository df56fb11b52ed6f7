"""Thumbnail helpers: the gray shown is the L* the model saw; truth only for colour."""
from __future__ import annotations

import numpy as np

from colorbatch_report.thumbs import Thumbnails, gray_from_L, gray_from_rgb, looks_colour


def test_gray_from_L_is_the_srgb_gray_of_that_lightness():
    L = np.array([[0.0, 50.0, 100.0, 53.3890]], np.float32)
    assert gray_from_L(L).tolist() == [[0, 119, 255, 128]]  # L* 50 = sRGB 118.9; 53.39 = 128


def test_gray_from_rgb_keeps_gray_and_matches_lightness():
    g = np.full((2, 2, 3), 77, np.uint8)
    assert (gray_from_rgb(g) == 77).all()
    red = np.array([[[255, 0, 0]]], np.uint8)  # L* of pure red is 53.24 -> gray 127
    assert abs(int(gray_from_rgb(red)[0, 0]) - 127) <= 1


def test_truth_only_for_colour_inputs(tmp_path):
    t = Thumbnails(tmp_path / "thumbs", size=16)
    rgb_gray = np.repeat(np.linspace(0, 1, 64, dtype=np.float32)[None, :, None], 3, axis=2).repeat(32, axis=0)
    t.add_arrays("gray-scan", L=rgb_gray[..., 0] * 100, rgb=rgb_gray, output=(rgb_gray * 255).astype(np.uint8))
    rgb = rgb_gray.copy()
    rgb[..., 0] = 1.0
    t.add_arrays("colour", rgb=rgb, output=(rgb * 255).astype(np.uint8))
    assert not looks_colour((rgb_gray * 255).astype(np.uint8)) and looks_colour((rgb * 255).astype(np.uint8))
    assert not list((tmp_path / "thumbs").glob("*"))  # kept in memory until flushed
    t.flush()
    assert set(t.index["gray-scan"]) == {"gray", "color"}
    assert set(t.index["colour"]) == {"gray", "color", "truth"}
    t.forget("colour")
    assert len(list((tmp_path / "thumbs").glob("*.jpg"))) == 2
    from PIL import Image

    with Image.open(tmp_path / "thumbs" / t.index["gray-scan"]["color"]) as im:
        assert im.size == (16, 8)
