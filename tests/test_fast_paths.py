"""The fast CPU paths of colorize agree with the reference (float) paths."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from colorbatch import color  # noqa: E402
from colorbatch.colorizer import L_SCALE, prepare_item  # noqa: E402
from colorbatch.recombine import compose_full_cpu, upsample_rows  # noqa: E402
from colorbatch.images import read_image  # noqa: E402
from colorbatch.item import Item  # noqa: E402
from colorbatch.testing import save_tiny_image  # noqa: E402


def test_Lq_from_u8_matches_float_L():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)
    rgb[0, :4] = [[0, 0, 0], [255, 255, 255], [1, 0, 0], [0, 0, 1]]
    ref = color.rgb_to_L_np(rgb / 255.0)
    got = color.Lq_from_u8(rgb, tile_pixels=500) / L_SCALE  # several row bands
    assert np.abs(got - ref).max() < 3e-3
    gray = rgb[..., 1]
    assert np.abs(color.Lq_from_u8(gray) / L_SCALE - color.gray_to_L_np(gray / 255.0)).max() < 1e-3


@pytest.mark.parametrize("mode,suffix,raw", [("RGB", ".jpg", True), ("L", ".png", True),
                                             ("RGBA", ".png", False), ("I;16", ".png", False)])
def test_read_image_raw8_only_for_plain_8bit(tmp_path, mode, suffix, raw):
    p = save_tiny_image(tmp_path / f"x{suffix}", size=(30, 20), mode=mode)
    fast = read_image(p, raw8=True)
    ref = read_image(p)
    assert (fast.pixels.dtype == np.uint8) is raw
    px = fast.pixels / 255.0 if raw else fast.pixels
    assert np.abs(px - ref.pixels).max() < 1e-6
    assert fast.is_color == ref.is_color and fast.notes == ref.notes and fast.meta == ref.meta


def test_raw8_near_gray_flag(tmp_path):
    from PIL import Image

    a = np.random.default_rng(1).integers(0, 255, (50, 60), dtype=np.uint8)
    for arr, expected in ((np.dstack([a, a + 1, a]), True), (np.dstack([a, a, a + 0]), True)):
        arr = arr.copy()
        Image.fromarray(arr).save(tmp_path / "g.png")
        assert read_image(tmp_path / "g.png", raw8=True).meta.get("near_gray") is expected
    arr = np.dstack([a, a, a]).copy()
    arr[49, 59, 2] = (int(a[49, 59]) + 9) % 256  # one pixel off, outside the sparse sample
    Image.fromarray(arr).save(tmp_path / "c.png")
    assert read_image(tmp_path / "c.png", raw8=True).meta.get("near_gray") is None


@pytest.mark.parametrize("compact", [True, False])
def test_prepare_item_fast_path_matches_decode_item(tmp_path, compact):
    from colorbatch.images import decode_item

    p = save_tiny_image(tmp_path / "c.jpg", size=(45, 33), mode="RGB", pattern="noise")
    prep = prepare_item(Item(id="c.jpg", path=p, root=tmp_path), 32, compact=compact, want_rgb=True)
    ref = decode_item(Item(id="c.jpg", path=p, root=tmp_path))
    Lq = prep["Lq"].numpy().view(np.uint16)
    assert np.abs(Lq / L_SCALE - ref.L).max() < 3e-3
    assert prep["meta"]["input_mode"] == ref.meta["input_mode"]
    if compact:
        assert np.abs(prep["rgb"].numpy() / 255.0 - ref.rgb).max() < 1e-6
    no_rgb = prepare_item(Item(id="c.jpg", path=p, root=tmp_path), 32, compact=compact, want_rgb=False)
    assert no_rgb["rgb"] is None


def test_cpu_compose_matches_reference_recombination():
    rng = np.random.default_rng(2)
    H, W = 130, 201
    Lq = (rng.random((H, W)) * 65535).astype(np.uint16)
    Lq[:10] = 0  # black rows: the linear piece of f^-1
    ab_small = torch.from_numpy(rng.uniform(-0.9, 0.9, (2, 20, 31)).astype(np.float32))
    with torch.inference_mode():
        rgb, ab = compose_full_cpu(Lq, ab_small, want_ab=True)
        L = torch.from_numpy(Lq.astype(np.float32) / L_SCALE)
        up = upsample_rows(ab_small * 128.0, H, W, 0, H)
        ref = (color.lab_to_rgb_keep_L(torch.cat((L[None], up))) * 255).round().to(torch.uint8)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - ref.permute(1, 2, 0).numpy().astype(int)).max() <= 1
    assert np.abs(ab - up.permute(1, 2, 0).numpy()).max() < 1e-3


def test_compose_full_on_cpu_uses_the_kernel_within_the_issue_tolerances(monkeypatch):
    """The pipeline's CPU recombination (the fused kernel where numba runs) agrees with the
    torch path: L* of the output within 0.5, a*b* within 1, the a*b* output within 1e-3."""
    from colorbatch import kernels
    from colorbatch.recombine import compose_full

    kernels.warm_up()  # as the colorize step does for more than one image
    calls = []
    real = kernels.rgb8_from_lab
    monkeypatch.setattr(kernels, "rgb8_from_lab", lambda *a, **kw: calls.append(1) or real(*a, **kw))

    rng = np.random.default_rng(3)
    H, W = 97, 203
    Lq = (rng.random((H, W)) * 65535).astype(np.uint16)
    ab_small = torch.from_numpy(rng.uniform(-0.6, 0.6, (2, 13, 25)).astype(np.float32))
    with torch.inference_mode():
        rgb, ab = compose_full(Lq, ab_small, "cpu", want_ab=True)
        ref, ref_ab = compose_full_cpu(Lq, ab_small, want_ab=True)
        no_ab = compose_full(Lq, ab_small, "cpu", want_ab=False)
    assert no_ab[1] is None and np.array_equal(no_ab[0], rgb)
    assert np.abs(ab - ref_ab).max() < 1e-3
    lab = color.rgb_to_lab(torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1))
    lab_ref = color.rgb_to_lab(torch.from_numpy(ref.astype(np.float32) / 255.0).permute(2, 0, 1))
    assert (lab[0] - lab_ref[0]).abs().max() <= 0.5
    assert (lab[1:] - lab_ref[1:]).abs().max() <= 1.0
    assert len(calls) == (2 if kernels.ready() else 0)


def test_decode_L_quantised_uses_the_fused_kernel(tmp_path, monkeypatch):
    """Once the kernels are loaded, decode_L(quantised=True) goes through
    kernels.lq_from_rgb8, for 8-bit and 16-bit files; it agrees with the float L*."""
    from PIL import Image

    from colorbatch import kernels
    from colorbatch.images import decode_L
    from colorbatch.item import Item

    rng = np.random.default_rng(4)
    p8 = tmp_path / "c.png"
    Image.fromarray(rng.integers(0, 256, (21, 33, 3), dtype=np.uint8)).save(p8)
    p16 = tmp_path / "g16.png"
    Image.fromarray(rng.integers(0, 65536, (17, 9), dtype=np.uint16)).save(p16)
    kernels.warm_up()
    seen = []
    real = kernels.lq_from_rgb8
    monkeypatch.setattr(kernels, "lq_from_rgb8", lambda px, **kw: seen.append(px.dtype) or real(px, **kw))
    for p in (p8, p16):
        Lq, dec = decode_L(Item(id=p.name, path=p), quantised=True)
        L = decode_L(Item(id=p.name, path=p))[0]
        assert Lq.dtype == np.uint16 and np.abs(Lq / L_SCALE - L).max() < 0.01
    if kernels.ready():
        assert seen[0] == np.uint8 and len(seen) == 2
