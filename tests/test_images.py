"""colorbatch.images: reading every kind of file an archive holds, writing atomically."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from _awkward import H, W, make_awkward_inputs, png_header, rgb_icc_profile
from colorbatch.errors import ColorbatchError, ImageReadError
from colorbatch.images import (
    DEFAULT_MAX_PIXELS,
    L_to_gray,
    decode_item,
    max_pixels_limit,
    read_image,
    read_metadata,
    write_image,
)
from colorbatch.item import Item


@pytest.fixture(scope="module")
def awkward(tmp_path_factory):
    folder = tmp_path_factory.mktemp("awkward")
    good, bad = make_awkward_inputs(folder)
    return folder, good, bad


def test_every_good_awkward_input_decodes_to_the_right_shape(awkward):
    folder, good, _ = awkward
    for name, (w, h) in good.items():
        dec = read_image(folder / name)
        assert dec.pixels.dtype == np.float32, name
        assert dec.pixels.shape[:2] == (h, w), name
        assert dec.size == (w, h), name
        assert 0.0 <= float(dec.pixels.min()) and float(dec.pixels.max()) <= 1.0, name


@pytest.mark.parametrize(
    "name, is_color",
    [
        ("mode_1.png", False),
        ("mode_L.png", False),
        ("mode_LA.png", False),
        ("mode_P.png", True),
        ("mode_P_transparent.png", False),  # a gray palette stays gray
        ("mode_RGBA.png", True),
        ("cmyk.jpg", True),
        ("gray16.png", False),
        ("mode_I.tif", False),
        ("mode_F.tif", False),
        ("rgb16.tif", True),
    ],
)
def test_modes_map_to_gray_or_colour(awkward, name, is_color):
    folder, _, _ = awkward
    dec = read_image(folder / name)
    assert dec.is_color is is_color
    assert dec.pixels.ndim == (3 if is_color else 2)


def test_sixteen_bit_gray_keeps_its_precision(tmp_path):
    values = np.arange(0, 65536, 64, dtype=np.uint16).reshape(32, 32)
    for suffix in (".png", ".tif"):
        path = tmp_path / f"g16{suffix}"
        Image.fromarray(values).save(path)
        dec = read_image(path)
        assert dec.meta["bits"] == 16
        np.testing.assert_allclose(dec.pixels, values / 65535.0, atol=1e-6)
        # more distinct levels than 8 bits could hold
        assert len(np.unique(dec.pixels)) > 256


def test_sixteen_bit_colour_tiff_keeps_its_precision(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rgb = np.random.default_rng(0).integers(0, 65536, (8, 10, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", rgb, photometric="rgb")
    dec = read_image(tmp_path / "c.tif")
    assert dec.meta["bits"] == 16
    np.testing.assert_allclose(dec.pixels, rgb / 65535.0, atol=1e-6)


def test_int32_and_float_modes_are_scaled(tmp_path):
    Image.fromarray(np.full((4, 4), 200, np.int32)).save(tmp_path / "i.tif")
    dec = read_image(tmp_path / "i.tif")
    assert dec.pixels == pytest.approx(np.full((4, 4), 200 / 255.0), abs=1e-6)
    Image.fromarray(np.linspace(-5, 5, 16, dtype=np.float32).reshape(4, 4)).save(tmp_path / "f.tif")
    dec = read_image(tmp_path / "f.tif")
    assert float(dec.pixels.min()) == 0.0 and float(dec.pixels.max()) == 1.0
    assert any("rescaled" in n for n in dec.notes)


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white when stored
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    Image.fromarray(arr).save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=100)
    dec = read_image(tmp_path / "r.jpg")
    assert dec.pixels.shape[:2] == (40, 20)
    # after a clockwise turn the stored left half is on top
    assert dec.pixels[:15].mean() > 0.9 and dec.pixels[25:].mean() < 0.1
    assert dec.meta["exif_orientation"] == 6


def test_alpha_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :2, 3] = 0  # transparent left half
    rgba[:, 2:, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    dec = read_image(tmp_path / "a.png")
    np.testing.assert_allclose(dec.pixels[:, :2], 1.0)
    np.testing.assert_allclose(dec.pixels[:, 2:], [[[1, 0, 0]] * 2] * 4)


def test_icc_profile_is_converted_to_srgb(tmp_path):
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(tmp_path / "icc.png", icc_profile=rgb_icc_profile())
    dec = read_image(tmp_path / "icc.png")
    r, g, b = dec.pixels[0, 0]
    assert g > 0.8 and r < 0.2  # the profile's "red" primary is sRGB green
    assert dec.meta["icc"].startswith("swapped")
    # an sRGB-tagged file is left alone
    Image.fromarray(red).save(tmp_path / "srgb.png", icc_profile=_srgb_bytes())
    assert read_image(tmp_path / "srgb.png").pixels[0, 0].tolist() == [1.0, 0.0, 0.0]


def _srgb_bytes():
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_broken_icc_profile_is_a_note_not_a_failure(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "x.png", icc_profile=b"garbage" * 20)
    dec = read_image(tmp_path / "x.png")
    assert any("ICC" in n for n in dec.notes)


def test_animated_gif_uses_the_first_frame(awkward):
    folder, _, _ = awkward
    dec = read_image(folder / "animated.gif")
    assert dec.meta["frames"] == 3
    assert any("first frame" in n for n in dec.notes)


def test_near_gray_colour_files_are_flagged(tmp_path):
    g = np.random.default_rng(0).integers(0, 255, (8, 8), dtype=np.uint8)
    Image.fromarray(np.stack([g, g, g], axis=2)).save(tmp_path / "g.png")
    assert read_image(tmp_path / "g.png").meta.get("near_gray") is True
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "c.png")
    assert "near_gray" not in read_image(tmp_path / "c.png").meta


@pytest.mark.parametrize(
    "name, reason",
    [
        ("empty.jpg", "empty file (0 bytes)"),
        ("truncated.jpg", "truncated"),
        ("random_bytes.jpg", "not an image"),
        ("text.png", "holds text"),
        ("bomb.png", "COLORBATCH_MAX_PIXELS="),
    ],
)
def test_bad_files_raise_one_clear_error(awkward, name, reason):
    folder, _, bad = awkward
    with pytest.raises(ImageReadError) as info:
        read_image(folder / name)
    assert info.value.path == str(folder / name)
    assert reason in info.value.reason
    assert "\n" not in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "nope.png")
    (tmp_path / "d.jpg").mkdir()
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path / "d.jpg")


def test_pixel_limit_option_and_environment(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((100, 100), np.uint8)).save(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match="exceeds the limit of 5000 pixels"):
        read_image(tmp_path / "big.png", max_pixels=5000)
    assert read_image(tmp_path / "big.png", max_pixels=0).size == (100, 100)  # 0 = no limit
    monkeypatch.setenv("COLORBATCH_MAX_PIXELS", "5000")
    assert max_pixels_limit() == 5000
    with pytest.raises(ImageReadError, match="max_pixels option"):
        read_image(tmp_path / "big.png")
    assert read_image(tmp_path / "big.png", max_pixels=20000).size == (100, 100)
    monkeypatch.setenv("COLORBATCH_MAX_PIXELS", "lots")
    with pytest.raises(ColorbatchError, match="COLORBATCH_MAX_PIXELS"):
        max_pixels_limit()
    monkeypatch.delenv("COLORBATCH_MAX_PIXELS")
    assert max_pixels_limit() == DEFAULT_MAX_PIXELS
    (tmp_path / "huge.png").write_bytes(png_header(40_000, 40_000))
    with pytest.raises(ImageReadError, match="40000x40000"):
        read_image(tmp_path / "huge.png")


def test_raising_the_limit_beyond_pillows_own_guard(tmp_path, monkeypatch):
    # a header beyond Pillow's default guard is judged by our limit, not Pillow's
    (tmp_path / "h.png").write_bytes(png_header(20_000, 20_000))  # 400 MP, no data
    with pytest.raises(ImageReadError) as info:
        read_image(tmp_path / "h.png", max_pixels=10**9)
    assert "megapixels exceeds" not in info.value.reason  # passed the guard, failed decoding


# --------------------------------------------------------------------------- #
# L* and decode_item
# --------------------------------------------------------------------------- #


def test_gray_round_trip_through_L_is_exact():
    from colorbatch import color

    g = np.arange(256, dtype=np.float32).reshape(16, 16) / 255.0
    L = color.gray_to_L_np(g)
    assert np.array_equal(L_to_gray(L), np.arange(256, dtype=np.uint8).reshape(16, 16))


def test_decode_item_fills_L_and_rgb(tiny_image):
    item = Item(id="c.png", path=tiny_image("c.png", mode="RGB"))
    decode_item(item)
    assert item.rgb.shape == (24, 32, 3) and item.L.shape == (24, 32)
    assert item.L.dtype == np.float32 and 0 <= item.L.min() and item.L.max() <= 100
    gray = Item(id="g.png", path=tiny_image("g.png", mode="L"))
    decode_item(gray)
    assert gray.rgb is None and gray.L.shape == (24, 32)
    # no-op when L is set already
    gray.L = np.zeros((2, 2), np.float32)
    decode_item(gray)
    assert gray.L.shape == (2, 2)


def test_decode_item_uses_the_items_pixel_limit(tiny_image):
    item = Item(id="c.png", path=tiny_image("c.png"), meta={"max_pixels": 10})
    with pytest.raises(ImageReadError, match="exceeds the limit"):
        decode_item(item)


# --------------------------------------------------------------------------- #
# writing
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_write_image_formats_and_provenance(tmp_path, suffix):
    rgb = (np.random.default_rng(0).random((12, 16, 3)) * 255).astype(np.uint8)
    path = write_image(tmp_path / "sub" / f"o{suffix}", rgb, metadata={"model": "m-1", "colorbatch": "0.1.0"})
    with Image.open(path) as im:
        assert im.size == (16, 12) and im.mode == "RGB"
    assert read_metadata(path)["model"] == "m-1"
    gray = write_image(tmp_path / f"g{suffix}", rgb[..., 0])
    with Image.open(gray) as im:
        assert im.mode == ("RGB" if suffix == ".webp" else "L")  # WebP has no gray mode
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_write_image_lossless_png_round_trip(tmp_path):
    rgb = (np.random.default_rng(0).random((5, 7, 3)) * 255).astype(np.uint8)
    path = write_image(tmp_path / "x.png", rgb)
    assert np.array_equal(np.asarray(Image.open(path)), rgb)


def test_write_image_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "keep.png"
    write_image(target, np.zeros((4, 4), np.uint8))
    before = target.read_bytes()

    def broken_save(self, fp, *a, **kw):
        if isinstance(fp, (str, os.PathLike)):
            with open(fp, "wb") as fh:
                fh.write(b"partial")
        else:
            fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_image(target, np.full((4, 4), 255, np.uint8))
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.png"]


def test_write_image_refuses_unknown_formats(tmp_path):
    with pytest.raises(ColorbatchError, match="png, jpg, webp, tiff"):
        write_image(tmp_path / "x.bmp", np.zeros((2, 2), np.uint8))


@pytest.mark.parametrize(
    "mode, suffix",
    [("1", ".png"), ("L", ".png"), ("LA", ".png"), ("P", ".png"), ("RGB", ".jpg"), ("RGBA", ".png"),
     ("CMYK", ".jpg"), ("I;16", ".png"), ("I", ".tif"), ("F", ".tif")],
)
def test_tiny_image_fixture_writes_every_mode(tiny_image, mode, suffix):
    path = tiny_image(f"m{suffix}", size=(20, 10), mode=mode)
    with Image.open(path) as im:
        assert im.size == (20, 10)
    assert read_image(path).size == (20, 10)


def test_recipe_text_round_trips_through_toml():
    import tomllib

    from colorbatch.testing import recipe_text

    steps = [("load", {"source": "dir with spaces/ü", "extensions": [".jpg"], "limit": 3}), {"uses": "save", "with": {"out": "o", "quality": 0.5, "overwrite": True}}]
    data = tomllib.loads(recipe_text(steps, name="t", run_dir="runs/x"))
    assert data["schema_version"] == 1 and data["name"] == "t" and data["run_dir"] == "runs/x"
    assert data["steps"][0] == {"uses": "load", "with": {"source": "dir with spaces/ü", "extensions": [".jpg"], "limit": 3}}
    assert data["steps"][1]["with"]["overwrite"] is True
