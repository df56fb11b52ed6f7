"""The decoder's optional image-level context (arch ``context``): a no-op when added, saved
and loaded with the model, exported to ONNX, and trained by the train step's ``context``."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

TINY = dict(model="efficientnet-lite0", encoder_weights="none", size=64, batch_size=2, workers=0,
            threads=1, log_every=1, publish=False, loss="classify", out_stride=4)


def _model(context: bool, hints: bool = False, widths=(256, 128, 64, 48, 32)):
    from colorbatch.models import build_model

    torch.manual_seed(0)
    return build_model("efficientnet-lite0", "imagenet", True, head="classify", out_stride=4, hints=hints,
                       context=context, widths=widths).eval()


def _perturb(model, scale: float = 0.2):
    with torch.no_grad():
        for p in model.decoder.context.parameters():
            p.normal_(0, scale)
    return model


def test_added_context_starts_as_a_no_op_and_then_uses_the_whole_image():
    plain, ctx = _model(False), _model(True)
    missing, unexpected = ctx.load_state_dict(plain.state_dict(), strict=False)
    assert missing and all(k.startswith("decoder.context.") for k in missing) and not unexpected
    L = torch.rand(1, 1, 70, 90)  # odd size: padded inside
    with torch.no_grad():
        assert torch.equal(ctx(L), plain(L))
        _perturb(ctx)
        out = ctx(L)
        assert not torch.allclose(out, plain(L), atol=1e-3)
        # image-level: changing only the right half moves the prediction on the far left too
        # (after subtracting what the context-free model does there)
        L2 = L.clone()
        L2[..., 60:] = 1.0 - L2[..., 60:]
        delta_ctx = (ctx(L2) - out)[..., :8].abs().max()
        delta_plain = (plain(L2) - plain(L))[..., :8].abs().max()
        assert delta_ctx > delta_plain + 1e-3


def test_context_survives_a_checkpoint_round_trip(tmp_path):
    from colorbatch.models.checkpoint import load_checkpoint, read_meta, save_checkpoint

    m = _perturb(_model(True, hints=True))
    path = save_checkpoint(tmp_path / "m.safetensors", m, {}, omit_encoder=True)
    assert read_meta(path)["model"]["context"] is True
    loaded, _ = load_checkpoint(path)
    assert loaded.decoder.has_context
    x = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        assert torch.allclose(loaded(x), m(x), atol=1e-5)
    # a model without it says nothing of it
    plain = save_checkpoint(tmp_path / "p.safetensors", _model(False), {}, omit_encoder=True)
    assert "context" not in read_meta(plain)["model"]
    assert not load_checkpoint(plain)[0].decoder.has_context


def test_init_from_a_model_without_context_keeps_its_outputs(tmp_path):
    from colorbatch.models.checkpoint import save_checkpoint
    from colorbatch.training.finish import init_weights

    src = _model(False, hints=True)
    path = save_checkpoint(tmp_path / "src.safetensors", src, {}, omit_encoder=True)
    dst = _model(True, hints=True)
    line = init_weights(dst, str(path))
    assert "new ones keep their initialisation" in line
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(dst(x), src(x), atol=1e-6)


def test_context_exports_to_onnx_and_verifies(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from colorbatch.export import export_onnx, verify
    from colorbatch.models.checkpoint import save_checkpoint

    m = _perturb(_model(True, widths=(32, 16, 16, 16, 16)))
    ckpt = save_checkpoint(tmp_path / "m.safetensors", m, {"test": True})
    done = export_onnx(ckpt, tmp_path / "m.onnx")
    check = verify(ckpt, done.path)
    assert check["max_abs"] < 1e-4, check


def test_the_train_step_trains_the_context(tmp_path, write_recipe, run_recipe):
    from colorbatch.models.checkpoint import load_checkpoint, read_meta

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        base = rng.integers(0, 256, 3)
        img = np.clip(base + rng.integers(-40, 40, (72, 72, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i}.png")
    recipe = write_recipe([("load", {"source": str(folder)}),
                           ("train", dict(TINY, context=True, epochs=1, repeat=4, val_fraction=0.34))], name="ctx")
    summary = run_recipe(recipe)
    assert summary["status"] == "ok", summary
    ckpt = Path(summary["state"]["checkpoint"])
    assert read_meta(ckpt)["model"]["context"] is True
    model, _ = load_checkpoint(ckpt)
    assert model.decoder.context[-1].weight.abs().sum() > 0  # it learned: no longer all zero
    assert json.loads(ckpt.with_suffix(".json").read_text())["model"]["context"] is True
