"""Colour conversion: torch sRGB<->LAB against scikit-image."""
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
skcolor = pytest.importorskip("skimage.color")

from colorbatch import color  # noqa: E402


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _cube(step=5):
    v = np.arange(0, 256, step, dtype=np.float64)
    v = np.unique(np.append(v, 255.0)) / 255.0
    r, g, b = np.meshgrid(v, v, v, indexing="ij")
    return np.stack([r, g, b], -1).reshape(-1, 1, 3)  # N x 1 x 3 "image"


def _t(hwc):
    return torch.from_numpy(np.ascontiguousarray(hwc, dtype=np.float32)).permute(2, 0, 1)


def _np(chw):
    return chw.permute(1, 2, 0).numpy()


def test_rgb_to_lab_matches_skimage_on_dense_cube():
    rgb = _cube()
    ref = skcolor.rgb2lab(rgb)
    got = _np(color.rgb_to_lab(_t(rgb)))
    assert np.abs(got - ref).max() < 1e-3


def test_lab_to_rgb_matches_skimage_and_round_trips():
    rgb = _cube()
    lab = skcolor.rgb2lab(rgb)
    got = _np(color.lab_to_rgb(_t(lab)))
    assert np.abs(got - skcolor.lab2rgb(lab)).max() < 1e-3
    assert np.abs(got - rgb).max() < 1e-3


def test_batched_any_leading_dims():
    rgb = torch.rand(2, 3, 3, 5, 4)
    lab = color.rgb_to_lab(rgb)
    assert lab.shape == rgb.shape
    one = color.rgb_to_lab(rgb[1, 2])
    assert torch.allclose(lab[1, 2], one, atol=1e-5)
    assert torch.allclose(color.lab_to_rgb(lab), rgb, atol=1e-4)


def test_out_of_gamut_is_clipped_like_skimage():
    rng = np.random.default_rng(0)
    lab = rng.uniform([0, -128, -128], [100, 127, 127], (40, 40, 3))
    lab[0, 0] = (50, 127, -128)
    lab[0, 1] = (0, -128, 127)  # negative Z
    got = color.lab_to_rgb_np(lab[..., 0].astype(np.float32), lab[..., 1:].astype(np.float32))
    assert np.isfinite(got).all() and got.min() >= 0 and got.max() <= 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = skcolor.lab2rgb(lab)
    assert np.abs(got - ref).max() < 1e-3


def test_numpy_helpers():
    rng = np.random.default_rng(1)
    rgb = rng.random((37, 29, 3)).astype(np.float32)
    ref = skcolor.rgb2lab(rgb.astype(np.float64))
    assert np.abs(color.rgb_to_L_np(rgb) - ref[..., 0]).max() < 1e-3
    assert np.abs(color.rgb_to_lab_np(rgb) - ref).max() < 1e-3
    back = color.lab_to_rgb_np(ref[..., 0].astype(np.float32), ref[..., 1:].astype(np.float32))
    assert back.shape == rgb.shape and back.dtype == np.float32
    assert np.abs(back - rgb).max() < 1e-3
    gray = rng.random((13, 17)).astype(np.float32)
    ref_g = skcolor.rgb2lab(np.repeat(gray[..., None], 3, -1).astype(np.float64))[..., 0]
    assert np.abs(color.gray_to_L_np(gray) - ref_g).max() < 1e-3
    with pytest.raises(ValueError):
        color.rgb_to_L_np(gray)


def test_numpy_helpers_chunk_rows(monkeypatch):
    monkeypatch.setattr(color, "_ROWS", 4)
    gray = np.linspace(0, 1, 11 * 7, dtype=np.float32).reshape(11, 7)
    ref_g = skcolor.rgb2lab(np.repeat(gray[..., None], 3, -1).astype(np.float64))[..., 0]
    assert np.abs(color.gray_to_L_np(gray) - ref_g).max() < 1e-3


def test_L_to_gray_inverts_gray_to_L():
    g = torch.linspace(0, 1, 1001)
    assert torch.allclose(color.L_to_gray(color.gray_to_L(g)), g, atol=1e-5)
    # the gray of L* is the sRGB value whose (g, g, g) has that L*
    L = torch.tensor([0.0, 5.0, 50.0, 100.0])
    gray = color.L_to_gray(L)
    lab = color.rgb_to_lab(gray.view(1, 4, 1).expand(3, 4, 1))
    assert torch.allclose(lab[0, :, 0], L, atol=1e-3)


def test_keep_L_desaturates_out_of_gamut_at_constant_L():
    rng = np.random.default_rng(2)
    lab = rng.uniform([0, -128, -128], [100, 127, 127], (30, 30, 3)).astype(np.float32)
    lab[0, 0] = (100, 40, 40)  # impossible: white with chroma
    lab[0, 1] = (0, -30, 30)
    lab[1, 0] = (50, 5, -5)  # in gamut: unchanged
    t = _t(lab)
    out = color.lab_to_rgb_keep_L(t)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    back = color.rgb_to_lab(out)
    assert (back[0] - t[0]).abs().max() < 1e-2  # L* kept everywhere
    clipped = color.lab_to_rgb(t)
    assert (color.rgb_to_lab(clipped)[0] - t[0]).abs().max() > 5  # clipping would not keep it
    inside = (color.rgb_to_lab(clipped) - t).abs().amax(0) < 1e-3
    assert (out - clipped).abs().amax(0)[inside].max() < 1e-3
    assert torch.allclose(out[:, 0, 0], torch.ones(3), atol=1e-4)


def test_srgb8_fast_path_matches_keep_L():
    rng = np.random.default_rng(3)
    lab = rng.uniform([0, -100, -100], [100, 100, 100], (25, 31, 3)).astype(np.float32)
    t = _t(lab)
    ref = (color.lab_to_rgb_keep_L(t) * 255).round().to(torch.uint8).permute(1, 2, 0)
    got = color.lab_to_srgb8_keep_L(t[0], t[1], t[2])
    assert got.shape == (25, 31, 3) and got.dtype == torch.uint8
    assert (got.int() - ref.int()).abs().max() <= 1


def test_numpy_only_helpers_match_the_torch_ones():
    """colorbatch.color_numpy (what the video plugin uses, no torch) agrees with colorbatch.color."""
    rng = np.random.default_rng(3)
    L = rng.uniform(0, 100, (16, 12)).astype(np.float32)
    ab = rng.uniform(-90, 90, (16, 12, 2)).astype(np.float32)
    lab = torch.from_numpy(np.concatenate([L[None], np.moveaxis(ab, -1, 0)]))
    clipped = color.lab_to_rgb(lab).movedim(0, -1).numpy()
    kept = color.lab_to_rgb_keep_L(lab).movedim(0, -1).numpy()
    assert np.abs(color.lab_to_rgb_numpy(L, ab) - clipped).max() < 2e-3
    assert np.abs(color.lab_to_rgb_keep_L_numpy(L, ab) - kept).max() < 2e-3


def test_decode_L_is_the_one_path(tmp_path, tiny_image):
    """decode_item's float L* and the colorizer's quantised L* come from the same decode_L."""
    from colorbatch.images import L_SCALE, decode_item, decode_L
    from colorbatch.item import Item

    path = tiny_image(tmp_path / "c.png", size=(20, 14), mode="RGB", seed=1)
    item = decode_item(Item(id="c", path=path))
    Lq, dec = decode_L(Item(id="c", path=path), quantised=True)
    assert Lq.dtype == np.uint16 and dec.pixels.dtype == np.uint8
    assert np.abs(Lq / L_SCALE - item.L).max() < 0.01
    assert item.rgb is not None and item.rgb.dtype == np.float32
