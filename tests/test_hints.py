"""Colour hints: hint files (parsing, errors, lookup, schema) and hint-aware models."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from colorbatch import hints as H
from colorbatch.errors import ColorbatchError

ROOT = Path(__file__).resolve().parent.parent


def _write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def test_a_good_hint_file_in_every_colour_form_and_both_units(tmp_path):
    f = _write(tmp_path / "a.hints.json", {"version": 1, "points": [
        {"x": 10, "y": 20, "radius": 4, "color": "#ff0000"},
        {"x": 0.5, "y": 1.0, "color": "navy"},
        {"x": 3, "y": 4, "color": [0, 128, 0]},
        {"x": 7, "y": 8, "color": "#0f0"},
    ], "reference": "ref.jpg"})
    h = H.load(f)
    pts = H.points_in_pixels(h, 101, 51)
    assert pts[0] == (10.0, 20.0, 4.0, (255, 0, 0))
    assert pts[1] == (50.0, 50.0, H.DEFAULT_RADIUS, (0, 0, 128))  # fractions of the original
    assert pts[2][3] == (0, 128, 0) and pts[3][3] == (0, 255, 0)
    assert h.reference == "ref.jpg"


@pytest.mark.parametrize("content, field", [
    ("{not json", "not valid JSON (line 1)"),
    ("[1, 2]", "expected a JSON object"),
    ({"points": [{"x": 1, "y": 2, "color": "blurple"}]}, "field points.0.color"),
    ({"points": [{"x": 1, "y": 2, "color": [300, 0, 0]}]}, "field points.0.color"),
    ({"points": [{"x": 1, "y": 2, "color": "#12345"}]}, "field points.0.color"),
    ({"points": [{"x": -1, "y": 2, "color": "red"}]}, "field points.0.x"),
    ({"points": [{"x": 1, "color": "red"}]}, "field points.0.y"),
    ({"points": [{"x": 1, "y": 2, "colour": "red"}]}, "field points.0"),
    ({"points": [{"x": 1, "y": 2, "color": "red", "radius": -3}]}, "field points.0.radius"),
    ({"version": 2, "points": []}, "field version"),
    ({"points": "red"}, "field points"),
])
def test_each_kind_of_bad_hint_file_is_one_line_naming_file_and_field(tmp_path, content, field):
    f = _write(tmp_path / "bad.hints.json", content)
    with pytest.raises(ColorbatchError) as e:
        H.load(f)
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and field in msg, msg


def test_hint_files_are_found_beside_the_image_or_in_a_mirrored_folder(tmp_path):
    img = tmp_path / "in" / "sub" / "photo.jpg"
    img.parent.mkdir(parents=True)
    img.write_bytes(b"")
    assert H.find(img) is None
    beside = _write(img.with_name("photo.hints.json"), {"points": []})
    assert H.find(img) == beside
    mirrored = _write(tmp_path / "hints" / "sub" / "photo.hints.json", {"points": []})
    assert H.find(img, tmp_path / "hints", root=tmp_path / "in") == mirrored
    assert H.find(img, tmp_path / "elsewhere", root=tmp_path / "in") is None


def test_digest_changes_with_the_hints_and_the_reference(tmp_path):
    a = H.HintFile.model_validate({"points": [{"x": 1, "y": 1, "color": "red"}]})
    b = H.HintFile.model_validate({"points": [{"x": 1, "y": 1, "color": "blue"}]})
    ref = tmp_path / "ref.bin"
    ref.write_bytes(b"one")
    d1 = H.digest(a, ref)
    ref.write_bytes(b"two")
    assert len({H.digest(None), H.digest(a), H.digest(b), d1, H.digest(a, ref)}) == 5
    assert H.digest(None) == ""


def test_the_documented_json_schema_is_the_one_the_code_checks():
    doc = json.loads((ROOT / "docs" / "hints.schema.json").read_text())
    assert doc == json.loads(json.dumps(H.json_schema()))


# --------------------------------------------------------------------------- #
# hint-aware models


def _model(hints: bool):
    from colorbatch.models import build_model

    torch.manual_seed(0)
    return build_model("efficientnet-lite0", "imagenet", True, head="classify", out_stride=4, hints=hints).eval()


def test_a_fresh_hint_aware_model_is_the_automatic_one_and_takes_hints_at_odd_sizes():
    from colorbatch.models.hints import for_image, reference_hint

    plain, aware = _model(False), _model(True)
    aware.load_state_dict(plain.state_dict(), strict=False)
    L = torch.rand(1, 1, 70, 90)
    hints = for_image([(10, 20, 3, (200, 30, 30))], (140, 180), (70, 90),
                      reference_hint(np.random.default_rng(0).random((40, 50, 3))))
    assert hints.mask.shape == (1, 1, 70, 90) and hints.mask.sum() > 0
    with torch.no_grad():
        assert torch.allclose(aware(L), plain(L), atol=1e-6)
        assert torch.allclose(aware(L, hints=hints), plain(L), atol=1e-6)  # zero-initialised inputs
        # once the hint inputs carry weight, the hint changes the output
        for p in aware.decoder.hint_local.parameters():
            p.data.normal_(0, 0.5)
        assert not torch.allclose(aware(L, hints=hints), plain(L), atol=1e-3)


def test_a_model_without_hint_inputs_refuses_hints_in_one_line():
    from colorbatch.models.hints import for_image

    with pytest.raises(ColorbatchError) as e:
        _model(False)(torch.rand(1, 1, 64, 64), hints=for_image([(1, 1, 1, (255, 0, 0))], (64, 64), (64, 64)))
    assert "takes no colour hints" in str(e.value) and "\n" not in str(e.value)


def test_hint_inputs_survive_a_checkpoint_round_trip(tmp_path):
    from colorbatch.models.checkpoint import load_checkpoint, read_meta, save_checkpoint
    from colorbatch.models.hints import for_image

    m = _model(True)
    for p in m.decoder.hint_global.parameters():
        p.data.normal_(0, 0.1)
    for p in m.decoder.hint_local.parameters():
        p.data.normal_(0, 0.1)
    path = save_checkpoint(tmp_path / "m.safetensors", m, {}, omit_encoder=True)
    assert read_meta(path)["model"]["hints"] is True
    loaded, _ = load_checkpoint(path)
    h = for_image([(5, 5, 2, (0, 0, 255))], (64, 64), (64, 64))
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x, hints=h), m(x, hints=h), atol=1e-5)


def test_simulated_training_hints_come_from_the_truth():
    from colorbatch.models.hints import simulate

    t = torch.zeros(4, 2, 32, 32)
    t[:, 0] = 0.5  # a* = 64 everywhere
    h = simulate(t, torch.Generator().manual_seed(0), p_none=0.0, p_global=1.0)
    assert (h.mask.flatten(1).sum(1) > 0).all()
    assert torch.allclose(h.ab[:, 0][h.mask[:, 0] > 0], torch.tensor(0.5))
    assert (h.glob[:, -1] == 1).all()  # presence flag
    none = simulate(t, torch.Generator().manual_seed(0), p_none=1.0, p_global=0.0)
    assert none.mask.sum() == 0 and none.glob.abs().sum() == 0


def test_init_from_starts_training_from_a_checkpoint_and_refuses_a_misfit(tmp_path):
    from colorbatch.models import build_model
    from colorbatch.models.checkpoint import save_checkpoint
    from colorbatch.training.finish import init_weights

    src = _model(False)
    path = save_checkpoint(tmp_path / "m.safetensors", src, {}, omit_encoder=True)
    dst = _model(True)
    for p in dst.decoder.fuse.parameters():
        p.data.zero_()
    line = init_weights(dst, str(path))
    assert "new ones keep their initialisation" in line
    assert torch.equal(dst.decoder.head.weight, src.decoder.head.weight)
    regress = build_model("efficientnet-lite0", "imagenet", True, head="regress", out_stride=4)
    with pytest.raises(ColorbatchError, match="differs"):
        init_weights(regress, str(path))
    with pytest.raises(ColorbatchError, match="no such checkpoint"):
        init_weights(dst, str(tmp_path / "missing.safetensors"))
