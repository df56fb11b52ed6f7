"""Colour hints end to end: the Colorizer with hints, `colorbatch colorize --hints/--reference`,
resume when hints change, `colorbatch evaluate --hints N --reference self`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from colorbatch.errors import ColorbatchError  # noqa: E402

ENV = {**os.environ, "COLORBATCH_NO_PLUGINS": "1", "COLUMNS": "200", "OMP_NUM_THREADS": "1"}


def _net(hints: bool, seed: int = 0):
    """A small model (untrained decoder, ImageNet encoder) whose a*b* stay moderate."""
    from colorbatch.models import build_model

    torch.manual_seed(seed)
    m = build_model("efficientnet-lite0", "imagenet", True, head="classify", out_stride=4, hints=hints,
                    widths=(32, 16, 16, 16, 16)).eval()
    if hints:  # give the hint inputs some weight, as training would
        for p in list(m.decoder.hint_local.parameters()) + list(m.decoder.hint_global.parameters()):
            p.data.normal_(0, 0.05)
    return m


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from colorbatch.models.checkpoint import save_checkpoint

    d = tmp_path_factory.mktemp("models")
    return {"aware": save_checkpoint(d / "aware.safetensors", _net(True), {"test": True}),
            "plain": save_checkpoint(d / "plain.safetensors", _net(False), {"test": True})}


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "colorbatch", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=ENV, timeout=300)


def _scene(seed: int, size=(96, 128)) -> np.ndarray:
    """A colour 'photo': smooth blobs of distinct colours and lightness (float 0-1)."""
    rng = np.random.default_rng(seed)
    H, W = size
    yy, xx = np.mgrid[:H, :W] / max(H, W)
    rgb = np.full((H, W, 3), 0.5, np.float32)
    for _ in range(4):
        cy, cx, r = rng.random(), rng.random(), 0.15 + 0.25 * rng.random()
        w = np.exp(-((yy - cy * H / max(H, W)) ** 2 + (xx - cx * W / max(H, W)) ** 2) / (2 * r * r))[..., None]
        rgb = rgb * (1 - w) + w * rng.random(3).astype(np.float32)
    return np.clip(rgb, 0, 1).astype(np.float32)


def _write_photo(path: Path, rgb: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).save(path)
    return path


# --------------------------------------------------------------------------- #
# the Colorizer


def test_a_hint_colour_shows_at_its_place_and_only_near_it():
    from colorbatch.colorizer import Colorizer
    from colorbatch.metrics import rgb_to_lab
    from colorbatch.models.hints import for_image, srgb_to_ab128

    col = Colorizer(_net(True), "cpu", 128, 1)
    L = np.full((96, 128), 55.0, np.float32)
    L[:, 64:] = 20.0  # a dark right half: the hint (on the left) should not spread there
    red = (200, 40, 40)
    want = np.array(srgb_to_ab128([red])[0]) * 128.0
    h = for_image([(20.0, 40.0, 4.0, red)], L.shape, col.net_hw(L.shape))
    auto = col.predict_ab([L])[0]
    ab = col.predict_ab([L], hints=[h])[0]
    yy, xx = np.mgrid[:96, :128]
    disc = (yy - 40) ** 2 + (xx - 20) ** 2 <= 16
    assert np.hypot(*(ab[disc].mean(0) - want)) < 10  # at the hint: its colour (Delta E on a*b*)
    near = (np.abs(yy - 40) < 8) & (np.abs(xx - 34) < 4)  # same lightness, close by: pulled towards it
    assert np.hypot(*(ab[near].mean(0) - want)) < np.hypot(*(auto[near].mean(0) - want))
    far = xx > 100  # other lightness, far away: about the automatic colour
    assert np.abs(ab[far] - auto[far]).mean() < 0.25 * np.abs(ab[disc] - auto[disc]).mean()
    assert not np.allclose(rgb_to_lab(np.zeros((1, 1, 3), np.float32)), 1)  # (metrics import sanity)


def test_more_true_hints_do_not_lower_psnr_on_a_fixed_set():
    """0, 3 and 10 hints simulated from the truth: PSNR rises (in the mean over a few images)."""
    from colorbatch.colorizer import Colorizer
    from colorbatch.metrics import psnr, rgb_to_lab, lab_to_rgb, to_uint8
    from colorbatch.models.hints import for_image, simulate_user_points

    col = Colorizer(_net(True), "cpu", 128, 4)
    scenes = [_scene(s) for s in range(4)]
    Ls = [rgb_to_lab(s)[..., 0] for s in scenes]
    means = []
    for n in (0, 3, 10):
        hints = [for_image(simulate_user_points(s, n, seed=i), L.shape, col.net_hw(L.shape)) if n else None
                 for i, (s, L) in enumerate(zip(scenes, Ls))]
        abs_ = col.predict_ab(Ls, hints=hints if n else None)
        means.append(np.mean([psnr(to_uint8(lab_to_rgb(L, ab)), to_uint8(s)) for s, L, ab in zip(scenes, Ls, abs_)]))
    assert means[0] < means[1] < means[2], means


def test_the_split_encode_decode_path_equals_the_batch_path():
    from colorbatch.colorizer import Colorizer, net_shape, resize_L01
    from colorbatch.models.hints import for_image

    col = Colorizer(_net(True), "cpu", 128, 2)
    L = np.linspace(10, 90, 90 * 70, dtype=np.float32).reshape(70, 90)
    small = resize_L01(L, net_shape(70, 90, 128))
    h = for_image([(30.0, 20.0, 3.0, (20, 90, 200))], L.shape, col.net_hw(L.shape))
    enc = col.encode(small)
    assert torch.allclose(col.decode(enc, small, h), col.predict_small([small], [h])[0], atol=1e-5)
    assert torch.allclose(col.decode(enc, small), col.predict_small([small])[0], atol=1e-5)


def test_a_reference_sets_how_vivid_the_output_is():
    from colorbatch.colorizer import Colorizer
    from colorbatch.metrics import colorfulness, lab_to_rgb, rgb_to_lab, to_uint8
    from colorbatch.models.hints import for_image, reference_colourfulness, reference_hint

    col = Colorizer(_net(True), "cpu", 128, 1)
    truth = _scene(7)
    L = rgb_to_lab(truth)[..., 0]
    auto = colorfulness(to_uint8(lab_to_rgb(L, col.predict_ab([L])[0])))
    outs = []
    for k in (0.5, 2.0):  # a reference paler, and one more vivid, than the automatic result
        ref = _scene(3)
        ref = np.clip(0.5 + (ref - 0.5) * k * auto / reference_colourfulness(ref), 0, 1)
        want = reference_colourfulness(ref)
        h = for_image([], L.shape, col.net_hw(L.shape), reference_hint(ref), want)
        outs.append(colorfulness(to_uint8(lab_to_rgb(L, col.predict_ab([L], hints=[h])[0]))))
        assert abs(outs[-1] - want) < 0.1 * want + 1, (auto, want, outs[-1])
    assert outs[0] < auto < outs[1]


def test_a_model_without_hint_inputs_refuses_them_through_the_colorizer():
    from colorbatch.colorizer import Colorizer
    from colorbatch.models.hints import for_image

    col = Colorizer(_net(False), "cpu", 64, 1)
    assert not col.accepts_hints
    L = np.full((40, 40), 50.0, np.float32)
    with pytest.raises(ColorbatchError, match="takes no colour hints"):
        col.predict_ab([L], hints=[for_image([(5.0, 5.0, 2.0, (255, 0, 0))], L.shape, col.net_hw(L.shape))])
    assert col.predict_ab([L], hints=[None])[0].shape == (40, 40, 2)  # no hint given: fine


# --------------------------------------------------------------------------- #
# the command line


def _folder(tmp_path: Path, n: int = 3) -> Path:
    d = tmp_path / "in"
    for i in range(n):
        _write_photo(d / f"p{i}.png", _scene(i))
        (d / f"p{i}.hints.json").write_text(json.dumps({"points": [{"x": 0.3, "y": 0.4, "radius": 4, "color": "#c02020"}]}))
    return d


def _manifest(out: Path) -> dict:
    recs = [json.loads(x) for x in (out / ".colorbatch-manifest.jsonl").read_text().splitlines() if x.strip()]
    return {r["id"]: r for r in recs}


def test_colorize_uses_sidecars_records_them_and_redoes_only_the_image_whose_hints_changed(tmp_path, checkpoints):
    src = _folder(tmp_path)
    out = tmp_path / "out"
    r = cli("colorize", src, "--out", out, "--model", checkpoints["aware"], "--size", "64", "-j", "0")
    assert r.returncode == 0, r.stderr
    first = _manifest(out)
    assert all(rec["options"].get("hints") for rec in first.values())  # provenance: the hints' digest
    from PIL import Image

    assert first["p1.png"]["options"]["hints"] in json.dumps(Image.open(out / "p1.png").info)
    before = {p.name: p.read_bytes() for p in out.glob("*.png")}
    (src / "p1.hints.json").write_text(json.dumps({"points": [{"x": 0.3, "y": 0.4, "radius": 4, "color": "#2020c0"}]}))
    r = cli("colorize", src, "--out", out, "--model", checkpoints["aware"], "--size", "64", "-j", "0")
    assert r.returncode == 0, r.stderr
    assert "1 ok" in r.stdout + r.stderr and "2 skipped" in r.stdout + r.stderr
    after = {p.name: p.read_bytes() for p in out.glob("*.png")}
    assert after["p0.png"] == before["p0.png"] and after["p2.png"] == before["p2.png"]
    assert after["p1.png"] != before["p1.png"]
    assert _manifest(out)["p1.png"]["options"]["hints"] != first["p1.png"]["options"]["hints"]


def test_a_mirrored_hints_folder_and_a_bad_file_that_fails_only_its_image(tmp_path, checkpoints):
    src = tmp_path / "in"
    for i in range(2):
        _write_photo(src / "sub" / f"q{i}.png", _scene(10 + i))
    hints = tmp_path / "hints" / "sub"
    hints.mkdir(parents=True)
    (hints / "q0.hints.json").write_text(json.dumps({"points": [{"x": 5, "y": 5, "color": "navy"}]}))
    (hints / "q1.hints.json").write_text(json.dumps({"points": [{"x": 5, "y": 5, "color": "blurple"}]}))
    r = cli("colorize", src, "--out", tmp_path / "out", "--hints", tmp_path / "hints", "--model",
            checkpoints["aware"], "--size", "64", "-j", "0")
    assert r.returncode != 0
    text = r.stdout + r.stderr
    assert "q1.hints.json: field points.0.color" in text and "1 ok" in text and "1 failed" in text
    assert (tmp_path / "out" / "sub" / "q0.png").is_file() and not (tmp_path / "out" / "sub" / "q1.png").exists()
    assert _manifest(tmp_path / "out")["sub/q0.png"]["options"]["hints"]


def test_hints_with_a_model_without_hint_inputs_stop_the_run_in_one_line(tmp_path, checkpoints):
    src = _folder(tmp_path, 1)
    ref = _write_photo(tmp_path / "ref.png", _scene(5))
    r = cli("colorize", src, "--out", tmp_path / "out", "--reference", ref, "--model", checkpoints["plain"])
    assert r.returncode != 0
    err = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(err) == 1 and "takes no colour hints" in err[0], r.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.png"))
    r = cli("colorize", src, "--out", tmp_path / "out", "--reference", tmp_path / "nope.jpg", "--model", checkpoints["aware"])
    assert r.returncode != 0 and "nope.jpg: no such file" in r.stderr


def test_evaluate_with_simulated_hints_and_reference_self(tmp_path, checkpoints):
    src = tmp_path / "photos"
    for i in range(3):
        _write_photo(src / f"e{i}.png", _scene(20 + i))
    scores = {}
    for label, extra in (("auto", []), ("hints", ["--hints", "10"]), ("self", ["--reference", "self"])):
        out = tmp_path / label
        r = cli("evaluate", src, "--out", out, "--model", checkpoints["aware"], "--size", "64", "-j", "0", *extra)
        assert r.returncode == 0, r.stderr
        scores[label] = json.loads((out / "metrics.json").read_text())
    def psnr(m):
        return m["aggregate"]["psnr"]["mean"] if "aggregate" in m else m["psnr"]["mean"]
    assert psnr(scores["hints"]) > psnr(scores["auto"])
    # gray inputs have no truth to take hints from: each fails with one line
    _write_photo(src / "gray.png", np.repeat(_scene(1).mean(-1, keepdims=True), 3, -1))
    r = cli("evaluate", src, "--out", tmp_path / "g", "--model", checkpoints["aware"], "--size", "64", "-j", "0",
            "--hints", "3")
    assert "gray" in r.stdout + r.stderr


def test_a_hint_file_can_set_one_images_colour_strength_even_for_a_model_without_hint_inputs(tmp_path, checkpoints):
    from colorbatch.metrics import rgb_to_lab
    from PIL import Image

    src = tmp_path / "in"
    _write_photo(src / "g.png", _scene(2))
    _write_photo(src / "h.png", _scene(2))
    (src / "g.hints.json").write_text(json.dumps({"chroma": 0.0}))
    r = cli("colorize", src, "--out", tmp_path / "out", "--model", checkpoints["plain"], "--size", "64", "-j", "0")
    assert r.returncode == 0, r.stderr
    lab = {n: rgb_to_lab(np.asarray(Image.open(tmp_path / "out" / n), np.float32) / 255.0) for n in ("g.png", "h.png")}
    assert np.abs(lab["g.png"][..., 1:]).max() < 1.5  # chroma 0: gray, by this image's file
    assert np.abs(lab["h.png"][..., 1:]).mean() > 1.0  # the other keeps the model's colour
